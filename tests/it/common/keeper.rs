//! Starts the peers tests share (slapd, the OpenID Connect provider) so that they die with this
//! test binary. A shared peer outlives the test that started it and statics are never dropped,
//! so the kernel must end it: each peer gets a parent-death signal. That signal follows the
//! *thread* that forked, and test threads end after each test, so the forking happens on one
//! thread that lives as long as the binary.

use parking_lot::Mutex;
use std::io;
use std::process::Child;
use std::sync::OnceLock;
use std::sync::mpsc;

type Spawn = Box<dyn FnOnce() -> io::Result<Child> + Send>;
type Job = (Spawn, mpsc::Sender<io::Result<Child>>);

/// Runs `spawn` (which should call `Command::spawn` on a command made with [`dies_with_us`]) on
/// the keeper thread.
pub fn spawn(spawn: impl FnOnce() -> io::Result<Child> + Send + 'static) -> io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("peer-keeper".into())
            .spawn(move || {
                for (job, reply) in rx {
                    let _ = reply.send(job());
                }
                // Every sender is in a static, so this is never reached while tests run.
                loop {
                    std::thread::park();
                }
            })
            .expect("keeper thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    keeper
        .lock()
        .send((Box::new(spawn), reply))
        .map_err(|_| io::Error::other("the keeper thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the keeper thread is gone"))?
}

/// Arms `cmd` to be killed when the thread that spawns it (the keeper) dies.
pub fn dies_with_us(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)
        })
    }
}
