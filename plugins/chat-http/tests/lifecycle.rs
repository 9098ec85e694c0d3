//! The managed server's life is tied to the host's: it survives the exit of
//! the thread that started it (the host calls `load` on pooled threads that
//! come and go), and it dies when the host process is killed without any
//! chance to clean up (`PR_SET_PDEATHSIG`).
//!
//! The "host" here is this test binary re-run as a child process, so the
//! test can SIGKILL it.

mod util;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hearth_chat_http::launch::{ManagedServer, Spec};
use util::process_alive as alive;

const ROLE: &str = "CHAT_HTTP_LIFECYCLE_HOST";

/// In the child: start a server from a short-lived thread, let that thread
/// end, report the server's pid, then wait to be killed.
fn play_host() -> ! {
    let starter = std::thread::spawn(|| {
        ManagedServer::start(Spec {
            program: "/bin/sleep".into(),
            args: vec!["300".into()],
            env: Default::default(),
            cwd: std::env::temp_dir(),
            log: None,
            stop_timeout: Duration::from_secs(1),
        })
        .expect("start sleep")
    });
    let server = starter.join().expect("starter thread");
    // The starting thread is gone; the server must still run.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.exited().is_none(),
        "the server died with the thread that started it"
    );
    println!("server-pid {}", server.pid());
    std::mem::forget(server);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn the_server_outlives_its_starting_thread_and_dies_with_the_host() {
    if std::env::var_os(ROLE).is_some() {
        play_host();
    }
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_server_outlives_its_starting_thread_and_dies_with_the_host",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-run this test binary as the host");
    let stdout = BufReader::new(host.stdout.take().unwrap());
    let pid: u32 = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints "test NAME ... " without a newline first.
        .find_map(|l| l.split_once("server-pid ").map(|(_, p)| p.trim().parse().unwrap()))
        .expect("the host reports its server's pid");
    assert!(alive(pid));

    host.kill().unwrap(); // SIGKILL: no destructor, no shutdown runs.
    host.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the server (pid {pid}) outlived its killed host");
}
