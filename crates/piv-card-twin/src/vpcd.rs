//! The card's side of vpcd (the virtual smart-card reader driver of vsmartcard, loaded by pcscd):
//! vpcd listens on a TCP port per reader slot, the card connects as a client. Every message is a
//! 2-byte big-endian length and a payload. A 1-byte payload is a control code (0 power off, 1 power
//! on, 2 reset, 4 "send your ATR" — only 4 is answered); a longer one is a command APDU, answered
//! with the response APDU.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::applet::{PivApplet, PivState, TouchOutcome};

/// The address vpcd's first reader slot listens on (Debian's `/etc/reader.conf.d/vpcd`:
/// `CHANNELID 0x8C7B`; reader "Virtual PCD 00 00").
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 35963;

/// The ATR of a YubiKey 5 (USB), advertising T=1 (the `yubikey` crate always connects with T=1).
pub const YUBIKEY5_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// How long a removed card stays out before [`VirtualPivCard::insert`] plugs it back in. pcscd
/// polls a vpcd reader's presence every 0.4 s (pcsc-lite `PCSCLITE_STATUS_POLL_RATE`), and vpcd
/// answers a poll by accepting a waiting connection: a card that comes back before pcscd's next
/// poll is never seen as removed, while the failed exchange already marked the reader empty — pcscd
/// then reports "no card" until the card is removed again (seen with pcsc-lite 1.9.9 and vpcd 3.3).
pub const REINSERT_DELAY: Duration = Duration::from_millis(1000);

const CTRL_POWER_OFF: u8 = 0;
const CTRL_POWER_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_ATR: u8 = 4;

/// Whether the person touches the key when it blinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Touches at once (the default).
    Given,
    /// Never touches: the card answers "security status not satisfied" (6982) at once, as a
    /// YubiKey does when its touch timeout (about 15 s) runs out.
    Refused,
    /// The key blinks and waits until the test calls [`VirtualPivCard::set_touch`] or removes the
    /// card ([`Inserted::remove`]).
    Pending,
}

struct Control {
    touch: Touch,
}

struct Shared {
    serial: u32,
    applet: Mutex<PivApplet>,
    control: Mutex<Control>,
    changed: Condvar,
    touch_requests: AtomicU32,
    apdus: AtomicU32,
    resets: AtomicU32,
    instructions: Mutex<Vec<u8>>,
}

/// When a card (any card of this process) was last removed: the next insertion waits
/// [`REINSERT_DELAY`] after it, whichever card it is.
static REMOVED_AT: Mutex<Option<Instant>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A virtual PIV card: its state lives here, across insertions, until dropped. Cheap to clone (a
/// handle).
#[derive(Clone)]
pub struct VirtualPivCard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VirtualPivCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualPivCard")
            .field("serial", &self.serial())
            .finish_non_exhaustive()
    }
}

impl VirtualPivCard {
    pub fn new(state: PivState) -> VirtualPivCard {
        VirtualPivCard {
            shared: Arc::new(Shared {
                serial: state.serial,
                applet: Mutex::new(PivApplet::new(state)),
                control: Mutex::new(Control {
                    touch: Touch::Given,
                }),
                changed: Condvar::new(),
                touch_requests: AtomicU32::new(0),
                apdus: AtomicU32::new(0),
                resets: AtomicU32::new(0),
                instructions: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn serial(&self) -> u32 {
        self.shared.serial
    }

    /// Reads the card's persistent state (PIN tries, keys and their policies, objects). Blocks while
    /// the card is answering an APDU (including while it waits for a touch).
    pub fn with_state<R>(&self, f: impl FnOnce(&PivState) -> R) -> R {
        f(lock(&self.shared.applet).state())
    }

    /// What the person does the next time the key asks for a touch.
    pub fn set_touch(&self, touch: Touch) {
        lock(&self.shared.control).touch = touch;
        self.shared.changed.notify_all();
    }

    /// How many times the card asked for a touch so far.
    pub fn touch_requests(&self) -> u32 {
        self.shared.touch_requests.load(Ordering::SeqCst)
    }

    /// How many command APDUs the card has received (a check that nothing reached it).
    pub fn apdus(&self) -> u32 {
        self.shared.apdus.load(Ordering::SeqCst)
    }

    /// The INS byte of every command APDU received so far, in order (e.g. `0x20` VERIFY: a test can
    /// check that no PIN try was sent).
    pub fn instructions(&self) -> Vec<u8> {
        lock(&self.shared.instructions).clone()
    }

    /// How many power-ups and resets the card has seen.
    pub fn resets(&self) -> u32 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Waits until the card has asked for touch number `n` (1-based), at most `timeout`.
    pub fn wait_for_touch_request(&self, n: u32, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.touch_requests() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.touch_requests() >= n
    }

    /// Plugs the card into vpcd at `addr` (e.g. `("127.0.0.1", 35963)`): connects, retrying for up
    /// to `wait` while vpcd is not listening yet (pcscd loads it at start), and answers vpcd on a
    /// thread of its own until [`Inserted::remove`] or drop. pcscd sees the card some 0.3–0.6 s
    /// later.
    ///
    /// If a card of this process was removed less than [`REINSERT_DELAY`] ago, this call first
    /// sleeps out the rest of it.
    ///
    /// Do not probe the port with another connection: vpcd takes any client for a card.
    pub fn insert(&self, addr: impl ToSocketAddrs, wait: Duration) -> io::Result<Inserted> {
        let removed_at = *lock(&REMOVED_AT);
        if let Some(at) = removed_at {
            let back = at + REINSERT_DELAY;
            let now = Instant::now();
            if back > now {
                std::thread::sleep(back - now);
            }
        }
        let until = Instant::now() + wait;
        let stream = loop {
            match TcpStream::connect(&addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream.set_nodelay(true)?;
        let removed = Arc::new(AtomicBool::new(false));
        let thread = {
            let stream = stream.try_clone()?;
            let shared = Arc::clone(&self.shared);
            let removed = Arc::clone(&removed);
            std::thread::Builder::new()
                .name("piv-card-twin".into())
                .spawn(move || serve(stream, &shared, &removed))?
        };
        Ok(Inserted {
            stream,
            removed,
            shared: Arc::clone(&self.shared),
            thread: Some(thread),
        })
    }
}

/// A card in the reader. Dropping it removes the card.
pub struct Inserted {
    stream: TcpStream,
    removed: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Inserted {
    /// Pulls the card out: the connection to vpcd is closed, even in the middle of a command (an
    /// APDU being answered, a touch being waited for, which then gets no answer). pcscd reports the
    /// card removed. Returns the card thread's I/O error, if it had one before.
    pub fn remove(mut self) -> io::Result<()> {
        self.pull()
    }

    /// Whether the card thread is still serving vpcd (false after vpcd closed the connection).
    pub fn is_connected(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn pull(&mut self) -> io::Result<()> {
        if self.thread.is_none() {
            return Ok(());
        }
        self.removed.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let _ = self.stream.shutdown(Shutdown::Both);
        let result = match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the card thread panicked"))),
            None => Ok(()),
        };
        *lock(&REMOVED_AT) = Some(Instant::now());
        result
    }
}

impl Drop for Inserted {
    fn drop(&mut self) {
        let _ = self.pull();
    }
}

fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_message(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long for vpcd"))?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    stream.write_all(&out)
}

/// The card thread: answers vpcd until the connection ends or the card is removed.
fn serve(mut stream: TcpStream, shared: &Shared, removed: &AtomicBool) -> io::Result<()> {
    loop {
        let msg = match read_message(&mut stream) {
            Ok(m) => m,
            // Removed, or vpcd/pcscd went away: a card without a reader.
            Err(_) if removed.load(Ordering::SeqCst) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if removed.load(Ordering::SeqCst) {
            return Ok(());
        }
        match msg.as_slice() {
            [] => {}
            [CTRL_POWER_OFF] | [CTRL_POWER_ON] | [CTRL_RESET] => {
                shared.resets.fetch_add(1, Ordering::SeqCst);
                lock(&shared.applet).reset();
            }
            [CTRL_ATR] => write_message(&mut stream, &YUBIKEY5_ATR)?,
            [_] => {}
            apdu => {
                shared.apdus.fetch_add(1, Ordering::SeqCst);
                if let Some(&ins) = apdu.get(1) {
                    lock(&shared.instructions).push(ins);
                }
                let mut touch = || wait_for_touch(shared, removed);
                let answer = lock(&shared.applet).process(apdu, &mut touch);
                match answer {
                    Some(r) if !removed.load(Ordering::SeqCst) => write_message(&mut stream, &r)?,
                    _ => return Ok(()),
                }
            }
        }
    }
}

fn wait_for_touch(shared: &Shared, removed: &AtomicBool) -> TouchOutcome {
    shared.touch_requests.fetch_add(1, Ordering::SeqCst);
    let mut control = lock(&shared.control);
    loop {
        if removed.load(Ordering::SeqCst) {
            return TouchOutcome::Removed;
        }
        match control.touch {
            Touch::Given => return TouchOutcome::Touched,
            Touch::Refused => return TouchOutcome::TimedOut,
            Touch::Pending => {
                control = shared
                    .changed
                    .wait_timeout(control, Duration::from_millis(50))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atr_check_byte_is_right_for_t1() {
        // TCK: the XOR of T0 … the last historical byte equals the last byte.
        let tck = YUBIKEY5_ATR[1..YUBIKEY5_ATR.len() - 1]
            .iter()
            .fold(0u8, |a, b| a ^ b);
        assert_eq!(tck, YUBIKEY5_ATR[YUBIKEY5_ATR.len() - 1]);
    }
}
