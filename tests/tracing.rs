//! The runtime reports through `tracing`: the driver chosen and why, ring setup, the fallback to
//! epoll as a warning — and nothing at all on the hot path.

#[path = "common/mod.rs"]
mod common;
use hoop::{Builder, DriverChoice};
use std::fmt::Debug;
use std::sync::{Mutex, MutexGuard, Once};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event seen by the process: "LEVEL target: field=value ...".
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The tests count events, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Recorder;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let m = event.metadata();
        let line = format!("{} {}:{}", m.level(), m.target(), fields.0);
        EVENTS.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn setup() -> MutexGuard<'static, ()> {
    static INIT: Once = Once::new();
    INIT.call_once(|| tracing::subscriber::set_global_default(Recorder).unwrap());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn events_since(start: usize) -> Vec<String> {
    EVENTS.lock().unwrap()[start..].to_vec()
}

fn event_count() -> usize {
    EVENTS.lock().unwrap().len()
}

#[test]
fn runtime_start_names_the_driver_and_why() {
    let _serial = setup();
    for (driver, name) in common::drivers().into_iter().zip(common::driver_names()) {
        let start = event_count();
        let rt = Builder::new().driver(driver).build().unwrap();
        drop(rt);
        let events = events_since(start);
        let started = events
            .iter()
            .find(|e| e.contains("runtime started"))
            .unwrap_or_else(|| panic!("no start event in {events:?}"));
        assert!(started.starts_with("INFO hoop:"), "{started}");
        assert!(started.contains(&format!("driver={name}")), "{started}");
        assert!(started.contains("reason="), "{started}");
        if driver == DriverChoice::IoUring {
            let ring = events.iter().find(|e| e.contains("io_uring ready"));
            let ring = ring.unwrap_or_else(|| panic!("no ring event in {events:?}"));
            assert!(ring.starts_with("DEBUG hoop:"), "{ring}");
            // The newest setup flags the kernel has (6.1, 5.19, none before).
            let flags = if common::kernel_at_least((6, 1)) {
                "SINGLE_ISSUER"
            } else if common::kernel_at_least((5, 19)) {
                "COOP_TASKRUN"
            } else {
                "(none)"
            };
            assert!(ring.contains(&format!("setup=\"{flags}")), "{ring}");
        }
    }
}

#[test]
fn fallback_to_epoll_is_a_warning() {
    let _serial = setup();
    if std::env::var_os("HOOP_DRIVER").is_some() {
        // HOOP_DRIVER overrides Auto, so there is no fallback to observe.
        return;
    }
    let start = event_count();
    let rt = Builder::new()
        .uring_setup_fault(libc::EPERM)
        .build()
        .unwrap();
    assert_eq!(rt.info().driver, hoop::DriverKind::Epoll);
    drop(rt);
    let events = events_since(start);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("WARN hoop:") && e.contains("using epoll")),
        "{events:?}"
    );
}

#[test]
fn the_hot_path_is_silent() {
    let _serial = setup();
    for driver in common::drivers() {
        let rt = Builder::new().driver(driver).build().unwrap();
        let start = event_count();
        rt.block_on(async {
            // Operations, tasks, timers and socket I/O: no event for any of them.
            for _ in 0..1000 {
                hoop::io::nop().await.unwrap();
            }
            let tasks: Vec<_> = (0..100).map(|i| hoop::spawn(async move { i })).collect();
            for t in tasks {
                t.await.unwrap();
            }
            hoop::time::sleep(std::time::Duration::from_millis(2)).await;
            let (r, w) = hoop::io::pipe().unwrap();
            for _ in 0..100 {
                w.write_all(b"x".to_vec()).await.0.unwrap();
                r.read(Vec::with_capacity(1)).await.0.unwrap();
            }
        });
        assert_eq!(events_since(start), Vec::<String>::new(), "{driver:?}");
        drop(rt);
    }
}
