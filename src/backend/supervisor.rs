//! The supervisor that sits between vestibule and each local app process.
//!
//! `vestibule __supervise -- CMD ARGS…` starts CMD in a new process group and takes that whole
//! group down when either the app exits, vestibule asks it to stop (SIGTERM), or vestibule dies —
//! even by SIGKILL, through the kernel's parent-death signal. A plain child with a parent-death
//! signal would not do: only the direct child gets the signal, and apps started through `sh`,
//! `R -e` or worker pools leave grandchildren behind.

use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::{Pid, getppid};
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::clock::Instant;

/// vestibule's pid, passed to the supervisor so it can tell whether vestibule died before the
/// parent-death signal was armed.
pub const PARENT_PID_ENV: &str = "VESTIBULE_SUPERVISOR_PARENT";
/// The first line the supervisor's stderr carries: the app's pid, which is also its process
/// group. It is written by the app's own process before it runs any of the app's code, so the
/// app cannot forge it; vestibule uses it to take the group down if the supervisor is killed.
pub const APP_PID_LINE: &str = "[vestibule] app pid ";
/// How long the app gets to exit after SIGTERM before its group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the supervisor; returns the process exit code.
pub fn run(cmd: &[OsString]) -> i32 {
    let Some((program, args)) = cmd.split_first() else {
        eprintln!("[vestibule] supervisor: no command given");
        return 2;
    };
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        eprintln!("[vestibule] supervisor: cannot arm the parent-death signal: {e}");
        return 1;
    }
    if let Some(expected) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        && getppid().as_raw() != expected
    {
        // vestibule died before the signal was armed: nobody is left to serve this app.
        return 1;
    }

    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("[vestibule] supervisor: cannot block signals: {e}");
        return 1;
    }

    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove(PARENT_PID_ENV)
        .process_group(0);
    // The blocked signals would be inherited, leaving the app deaf to SIGTERM. The app also
    // dies with the supervisor (SIGKILL of the supervisor must not leave it running), and says
    // its pid before it becomes the app.
    // SAFETY: pthread_sigmask, prctl, getpid and write are async-signal-safe, as a pre_exec
    // hook requires, and announce_pid formats without allocating.
    unsafe {
        command.pre_exec(|| {
            SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            announce_pid();
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "[vestibule] cannot start '{}': {e}",
                program.to_string_lossy()
            );
            return 127;
        }
    };
    let group = Pid::from_raw(-(child.id() as i32));

    loop {
        match wait_signal(&signals, None) {
            Some(libc::SIGCHLD) => {
                if let Ok(Some(status)) = child.try_wait() {
                    // Whatever the app left running in its group goes with it.
                    let _ = kill(group, Signal::SIGKILL);
                    eprintln!("[vestibule] app {}", describe(status));
                    return exit_code(status);
                }
            }
            Some(_) => {
                let status = stop_group(&mut child, group, &signals);
                return status.map(exit_code).unwrap_or(143);
            }
            None => {}
        }
    }
}

/// Writes [`APP_PID_LINE`] and this process's pid to stderr, without allocating (it runs between
/// fork and exec).
fn announce_pid() {
    let mut line = [0u8; 48];
    let prefix = APP_PID_LINE.as_bytes();
    line[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = std::process::id();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = prefix.len() + digits.len() - i;
    line[prefix.len()..len].copy_from_slice(&digits[i..]);
    line[len] = b'\n';
    // SAFETY: the buffer is valid for len + 1 bytes; a failed write only loses the clean-up hint.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len + 1);
    }
}

/// SIGTERM to the app's group, then SIGKILL once the grace period is over.
fn stop_group(child: &mut Child, group: Pid, signals: &SigSet) -> Option<ExitStatus> {
    let _ = kill(group, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    let mut status = None;
    while status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        wait_signal(signals, Some(left));
        status = child.try_wait().ok().flatten();
    }
    let _ = kill(group, Signal::SIGKILL);
    status.or_else(|| child.wait().ok())
}

fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Option<i32> {
    match timeout {
        None => set.wait().ok().map(|s| s as i32),
        Some(d) => {
            let ts = libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            let raw: &libc::sigset_t = set.as_ref();
            // SAFETY: both pointers are valid for the duration of the call; siginfo may be null.
            let r = unsafe { libc::sigtimedwait(raw, std::ptr::null_mut(), &ts) };
            (r > 0).then_some(r)
        }
    }
}

pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("was killed by {s}"),
            Err(_) => format!("was killed by signal {sig}"),
        },
        _ => "exited".to_string(),
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
