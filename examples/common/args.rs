//! A small command-line parser shared by the examples: `--flag VALUE` or `--flag=VALUE`, bare
//! words as positional arguments, `--help`/`-h` prints the usage, and a bad or unknown argument
//! is refused with a clear message and exit status 2 (never silently ignored).

use std::fmt::Display;
use std::str::FromStr;

/// One argument: a flag (without its dashes) or a positional word.
pub enum Arg {
    Flag(String),
    Word(String),
}

pub struct Args {
    prog: &'static str,
    usage: &'static str,
    rest: std::vec::IntoIter<String>,
    /// The value given as `--flag=value`, for the flag just returned.
    inline: Option<String>,
}

impl Args {
    /// The process's arguments; exits with the usage on `--help`.
    pub fn new(prog: &'static str, usage: &'static str) -> Args {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("usage: {prog} {usage}");
            std::process::exit(0);
        }
        Args {
            prog,
            usage,
            rest: args.into_iter(),
            inline: None,
        }
    }

    /// The next argument.
    pub fn next(&mut self) -> Option<Arg> {
        if let Some(v) = self.inline.take() {
            self.fail(format!("unexpected value {v:?}"));
        }
        let a = self.rest.next()?;
        let Some(flag) = a.strip_prefix("--") else {
            return Some(Arg::Word(a));
        };
        Some(match flag.split_once('=') {
            Some((name, value)) => {
                self.inline = Some(value.to_string());
                Arg::Flag(name.to_string())
            }
            None => Arg::Flag(flag.to_string()),
        })
    }

    /// The value of flag `--name` as a duration in seconds (fractions allowed); exits with a
    /// message if it is missing, negative, not finite, or zero when `positive`.
    #[allow(dead_code)] // not every example takes a duration
    pub fn seconds(&mut self, name: &str, positive: bool) -> std::time::Duration {
        let s: f64 = self.value(name);
        if !(s.is_finite() && (s > 0.0 || (!positive && s == 0.0))) {
            self.fail(format!("--{name}: {s} is not a number of seconds"));
        }
        std::time::Duration::from_secs_f64(s)
    }

    /// The value of flag `--name`, parsed; exits with a message if it is missing or bad.
    pub fn value<T: FromStr>(&mut self, name: &str) -> T
    where
        T::Err: Display,
    {
        let Some(v) = self.inline.take().or_else(|| self.rest.next()) else {
            self.fail(format!("--{name} needs a value"));
        };
        v.parse()
            .unwrap_or_else(|e| self.fail(format!("--{name}: invalid value {v:?}: {e}")))
    }

    /// Refuses the command line.
    pub fn fail(&self, msg: impl Display) -> ! {
        eprintln!("{}: {msg}\nusage: {} {}", self.prog, self.prog, self.usage);
        std::process::exit(2)
    }

    /// Refuses an argument the example does not know.
    pub fn unknown(&self, arg: Arg) -> ! {
        match arg {
            Arg::Flag(f) => self.fail(format!("unknown option --{f}")),
            Arg::Word(w) => self.fail(format!("unexpected argument {w:?}")),
        }
    }
}
