//! A board's serial console: the device opened raw (`baud`, 8N1, no flow
//! control, `CLOCAL`) with nix's termios, read and written by one thread
//! that hands bytes to the async side. A device that vanishes (USB
//! re-enumeration: reads fail with `EIO` or the line hangs up) is waited
//! for up to `reenumerate`, opened again and reported as
//! [`SerialEvent::Reconnected`]; past that, [`SerialEvent::Gone`]. Bytes
//! read before are all delivered first, so nothing is lost.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};
use serialport::SerialPort;
use tokio::sync::mpsc;

/// How often the reader looks for output to write and a stop request.
const TICK_MS: u16 = 10;
/// How often a vanished device's path is looked at.
const REAPPEAR_CHECK: Duration = Duration::from_millis(20);

/// What the console reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialEvent {
    Bytes(Vec<u8>),
    /// The device vanished and was opened again after this long.
    Reconnected(Duration),
    /// The device vanished for longer than `reenumerate`, or failed.
    Gone(String),
}

/// An open console; closed when dropped.
#[derive(Debug)]
pub struct Console {
    pub events: mpsc::UnboundedReceiver<SerialEvent>,
    output: std::sync::mpsc::Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl Console {
    /// A sender of bytes to write to the device, in order.
    pub fn writer(&self) -> std::sync::mpsc::Sender<Vec<u8>> {
        self.output.clone()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The termios speed of `baud`, if it is a standard one.
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        500_000 => BaudRate::B500000,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        1_500_000 => BaudRate::B1500000,
        2_000_000 => BaudRate::B2000000,
        3_000_000 => BaudRate::B3000000,
        _ => return None,
    })
}

/// Opens `path` raw at `baud` 8N1.
fn open_raw(path: &Path, baud: u32) -> Result<OwnedFd, String> {
    let speed = baud_rate(baud).ok_or_else(|| format!("baud {baud} is not a standard speed"))?;
    let fd = open(
        path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open serial port {}: {e}", path.display()))?;
    let mut t = termios::tcgetattr(fd.as_fd())
        .map_err(|e| format!("{} is not a serial port: {e}", path.display()))?;
    termios::cfmakeraw(&mut t);
    termios::cfsetspeed(&mut t, speed).map_err(|e| format!("cannot set baud {baud}: {e}"))?;
    t.control_flags &= !(ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::CSTOPB);
    t.control_flags |= ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD;
    t.control_flags &= !ControlFlags::CRTSCTS;
    termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t)
        .map_err(|e| format!("cannot configure serial port {}: {e}", path.display()))?;
    Ok(fd)
}

/// Opens the console (before the board is reset, so its first line is
/// read). An error says why in words, for the board fault's reason.
pub fn open_console(path: &Path, baud: u32, reenumerate: Duration) -> Result<Console, String> {
    let fd = open_raw(path, baud)?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let (output, output_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let stop = Arc::new(AtomicBool::new(false));
    let (path, stopped) = (path.to_owned(), Arc::clone(&stop));
    std::thread::Builder::new()
        .name("serial".into())
        .spawn(move || {
            pump(
                fd,
                &path,
                baud,
                reenumerate,
                &events_tx,
                &output_rx,
                &stopped,
            )
        })
        .map_err(|e| format!("cannot start the serial reader: {e}"))?;
    Ok(Console {
        events,
        output,
        stop,
    })
}

fn pump(
    mut fd: OwnedFd,
    path: &Path,
    baud: u32,
    reenumerate: Duration,
    events: &mpsc::UnboundedSender<SerialEvent>,
    output: &std::sync::mpsc::Receiver<Vec<u8>>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut vanished = false;
        while let Ok(bytes) = output.try_recv() {
            if write_all(&fd, &bytes).is_err() {
                vanished = true;
                break;
            }
        }
        if !vanished {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(TICK_MS)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => vanished = true,
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if !vanished && revents.intersects(PollFlags::POLLIN) {
                match nix::unistd::read(&fd, &mut buf) {
                    Ok(0) => vanished = true,
                    Ok(n) => {
                        if events.send(SerialEvent::Bytes(buf[..n].to_vec())).is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                    Err(_) => vanished = true,
                }
            } else if revents
                .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            {
                vanished = true;
            }
        }
        if vanished {
            let since = Instant::now();
            match reopen(path, baud, reenumerate, stop) {
                Some(new) => {
                    fd = new;
                    let _ = events.send(SerialEvent::Reconnected(since.elapsed()));
                }
                None => {
                    let _ = events.send(SerialEvent::Gone(format!(
                        "serial device {} gone for more than {} s",
                        path.display(),
                        reenumerate.as_secs()
                    )));
                    return;
                }
            }
        }
    }
}

fn reopen(path: &Path, baud: u32, within: Duration, stop: &AtomicBool) -> Option<OwnedFd> {
    let deadline = Instant::now() + within;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(fd) = open_raw(path, baud) {
            return Some(fd);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(REAPPEAR_CHECK);
    }
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), nix::errno::Errno> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR)
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How long EN is held low by the DTR/RTS reset (esptool's `hard_reset`).
const RESET_PULSE: Duration = Duration::from_millis(100);

/// esptool's classic hard reset through the modem lines (DTR drives IO0,
/// RTS drives EN): IO0 high and EN low for 100 ms, then EN released, so the
/// chip boots its firmware. Blocking (it sleeps for the pulse). A device
/// without modem lines (a pty, such as the board simulator's) fails with a
/// clear error.
pub fn pulse_reset(path: &Path, baud: u32) -> Result<(), String> {
    let name = path.display();
    let mut port = serialport::new(path.to_string_lossy(), baud)
        .timeout(Duration::from_secs(1))
        .open_native()
        .map_err(|e| format!("cannot open {name} for the DTR/RTS reset: {e}"))?;
    // serialport opens ttys exclusively; the console holds the device open
    // too and must be able to reopen it after a re-enumeration.
    port.set_exclusive(false)
        .map_err(|e| format!("cannot share {name}: {e}"))?;
    let no_lines = |e: serialport::Error| {
        format!("{name} has no DTR/RTS modem lines ({e}); configure `reset` for this board")
    };
    port.write_data_terminal_ready(false).map_err(no_lines)?;
    port.write_request_to_send(true).map_err(no_lines)?;
    std::thread::sleep(RESET_PULSE);
    port.write_request_to_send(false).map_err(no_lines)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real pty: the simulator's kind of device, with no modem lines.
    fn pty() -> (nix::pty::OpenptyResult, std::path::PathBuf) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let name = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        (pty, name)
    }

    #[test]
    fn a_reset_without_modem_lines_names_the_device_and_the_fix() {
        let (_pty, name) = pty();
        let err = pulse_reset(&name, 115_200).expect_err("a pty has no DTR/RTS");
        assert!(err.contains(&name.display().to_string()), "{err}");
        assert!(err.contains("configure `reset`"), "{err}");
    }

    #[test]
    fn the_reset_handle_leaves_the_device_open_to_the_console() {
        let (_pty, name) = pty();
        let _ = pulse_reset(&name, 115_200);
        // Not left exclusive: the console can still open (and reopen) it.
        open_raw(&name, 115_200).expect("the device opens after the reset try");
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let err = pulse_reset(Path::new("/dev/serial/by-id/none-such"), 115_200)
            .expect_err("no such device");
        assert!(
            err.contains("cannot open /dev/serial/by-id/none-such"),
            "{err}"
        );
    }
}
