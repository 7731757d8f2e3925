//! The zlib C API that librdkafka links against: its gzip compression runs on libdeflate, its
//! decompression and checksums on zlib-rs.
//!
//! librdkafka (built by rdkafka-sys) calls eight zlib functions: `deflateInit2_`, `deflateBound`,
//! `deflate`, `deflateEnd` to gzip each message set, `inflateInit2_`, `inflate`, `inflateEnd` to
//! read gzip record batches (the FileStream sink), and `crc32` for its crc32 partitioner. This
//! module defines all eight under zlib's names, so the linker binds librdkafka to them and never
//! to the system's `libz.so` (a test checks that `libz.so` is not loaded and that compression
//! came through here).
//!
//! Why not zlib-rs for deflate too: librdkafka always hands a whole message set over (it sizes
//! the output with `deflateBound` for the whole set, feeds its buffer's segments with
//! `Z_NO_FLUSH`, then calls `Z_FINISH`), so a one-shot compressor fits, and libdeflate's is
//! faster at the same level with a slightly better ratio (README, Benchmarks). It also keeps its
//! state across message sets: one compressor per thread and level, instead of a zlib stream's
//! few hundred KB allocated and freed for every set.
//!
//! Invariant: a stream's input is buffered until `Z_FINISH`, compressed once, and its output
//! handed out in order across as many `deflate` calls as the caller's buffer needs; any other
//! flush mode is refused with `Z_STREAM_ERROR` (librdkafka uses none).

use std::cell::RefCell;
use std::os::raw::{c_char, c_int, c_uint, c_ulong};
use std::sync::atomic::{AtomicU64, Ordering};

use libdeflater::{CompressionLvl, Compressor};
use libz_rs_sys::z_stream;

const Z_OK: c_int = 0;
const Z_STREAM_END: c_int = 1;
const Z_STREAM_ERROR: c_int = -2;
const Z_BUF_ERROR: c_int = -5;
const Z_VERSION_ERROR: c_int = -6;
const Z_NO_FLUSH: c_int = 0;
const Z_FINISH: c_int = 4;
const Z_DEFLATED: c_int = 8;

/// Streams compressed to the end through this module since the process started: proof, for the
/// tests, that librdkafka's gzip runs here.
static FINISHED_STREAMS: AtomicU64 = AtomicU64::new(0);

/// Gzip (or zlib, or raw deflate) streams finished by [`deflate`] so far.
pub fn finished_streams() -> u64 {
    FINISHED_STREAMS.load(Ordering::Relaxed)
}

/// What the process's gzip runs on, for the start-up log line.
pub fn describe() -> String {
    // Every export's address, so that the objects holding them are in the link whichever codegen
    // units they land in: librdkafka's archive comes after the agent's, and an object nothing had
    // referenced by then would be left out, binding librdkafka to `libz.so` instead.
    let exports = [
        deflateInit2_ as *const () as usize,
        deflateBound as *const () as usize,
        deflate as *const () as usize,
        deflateEnd as *const () as usize,
        inflateInit2_ as *const () as usize,
        inflate as *const () as usize,
        inflateEnd as *const () as usize,
        crc32 as *const () as usize,
        zlibVersion as *const () as usize,
    ];
    std::hint::black_box(exports);
    format!("deflate: libdeflate; inflate and crc32: zlib-rs {}", zlib_version())
}

/// The version `zlibVersion` reports (zlib-rs's, as inflate is zlib-rs's).
pub fn zlib_version() -> String {
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(zlibVersion()) }.to_string_lossy().into_owned()
}

/// The container a stream writes, from zlib's `windowBits`.
#[derive(Clone, Copy)]
enum Wrapper {
    Gzip,
    Zlib,
    Raw,
}

/// One deflate stream: where `z_stream.state` points between `deflateInit2_` and `deflateEnd`.
struct Stream {
    level: i32,
    wrapper: Wrapper,
    /// Input gathered until `Z_FINISH`.
    input: Vec<u8>,
    /// Compressed bytes not yet copied out (only when the caller's buffer was too small to
    /// compress into directly), and how many of them have been copied.
    output: Vec<u8>,
    copied: usize,
    phase: Phase,
}

/// Where a stream is: taking input, handing out compressed output, or done.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Gathering,
    Draining,
    Ended,
}

thread_local! {
    /// One compressor per level on each thread that compresses (librdkafka's broker threads),
    /// kept for the thread's life: allocating one costs more than compressing a small set.
    static COMPRESSORS: RefCell<Vec<(i32, Compressor)>> = const { RefCell::new(Vec::new()) };
    /// The input buffer of the thread's last finished stream, reused by its next one.
    static SPARE_INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_compressor<T>(level: i32, f: impl FnOnce(&mut Compressor) -> T) -> T {
    COMPRESSORS.with(|cell| {
        let mut list = cell.borrow_mut();
        let at = match list.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                let lvl = CompressionLvl::new(level).unwrap_or_default();
                list.push((level, Compressor::new(lvl)));
                list.len() - 1
            }
        };
        f(&mut list[at].1)
    })
}

fn bound(stream: &Stream, len: usize) -> usize {
    with_compressor(stream.level, |c| match stream.wrapper {
        Wrapper::Gzip => c.gzip_compress_bound(len),
        Wrapper::Zlib => c.zlib_compress_bound(len),
        Wrapper::Raw => c.deflate_compress_bound(len),
    })
}

fn compress(stream: &Stream, out: &mut [u8]) -> Option<usize> {
    with_compressor(stream.level, |c| {
        let input = &stream.input;
        match stream.wrapper {
            Wrapper::Gzip => c.gzip_compress(input, out),
            Wrapper::Zlib => c.zlib_compress(input, out),
            Wrapper::Raw => c.deflate_compress(input, out),
        }
        .ok()
    })
}

/// # Safety
/// `strm` must be null or point to a `z_stream` whose `state` this module set.
unsafe fn stream_of<'a>(strm: *mut z_stream) -> Option<(&'a mut z_stream, &'a mut Stream)> {
    // SAFETY: the caller passes a valid z_stream or null.
    let strm = unsafe { strm.as_mut() }?;
    // SAFETY: `state` is null or the Box this module's deflateInit2_ leaked.
    let stream = unsafe { (strm.state as *mut Stream).as_mut() }?;
    Some((strm, stream))
}

/// zlib's `deflateInit2_`: a stream at `level` (-1: 6) writing gzip (`windowBits` 16 + 8..15),
/// zlib (8..15) or raw deflate (-15..-8). `memLevel` and `strategy` have no libdeflate
/// counterpart and are accepted as they are.
///
/// # Safety
/// `strm` must point to a writable `z_stream`; `version` must be null or a C string.
#[no_mangle]
pub unsafe extern "C" fn deflateInit2_(
    strm: *mut z_stream,
    level: c_int,
    method: c_int,
    window_bits: c_int,
    _mem_level: c_int,
    _strategy: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    // SAFETY: as zlib's, the caller passes a C string or null.
    if version.is_null() || unsafe { *version } != b'1' as c_char || stream_size as usize != size_of::<z_stream>() {
        return Z_VERSION_ERROR;
    }
    // SAFETY: the caller passes a valid z_stream or null.
    let Some(strm) = (unsafe { strm.as_mut() }) else { return Z_STREAM_ERROR };
    let wrapper = match window_bits {
        24..=31 => Wrapper::Gzip,
        8..=15 => Wrapper::Zlib,
        -15..=-8 => Wrapper::Raw,
        _ => return Z_STREAM_ERROR,
    };
    let level = match level {
        -1 => 6,
        0..=9 => level,
        _ => return Z_STREAM_ERROR,
    };
    if method != Z_DEFLATED {
        return Z_STREAM_ERROR;
    }
    let input = SPARE_INPUT.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let stream = Box::new(Stream { level, wrapper, input, output: Vec::new(), copied: 0, phase: Phase::Gathering });
    strm.state = Box::into_raw(stream) as *mut _;
    strm.total_in = 0;
    strm.total_out = 0;
    strm.msg = std::ptr::null_mut();
    Z_OK
}

/// zlib's `deflateBound`: the most `source_len` bytes of input can compress to.
///
/// # Safety
/// `strm` must be null or a stream set up by [`deflateInit2_`].
#[no_mangle]
pub unsafe extern "C" fn deflateBound(strm: *mut z_stream, source_len: c_ulong) -> c_ulong {
    // SAFETY: as documented.
    match unsafe { stream_of(strm) } {
        Some((_, stream)) => bound(stream, source_len as usize) as c_ulong,
        // zlib's own bound for an unknown stream, with room for any wrapper.
        None => source_len + (source_len >> 12) + (source_len >> 14) + (source_len >> 25) + 13 + 18,
    }
}

/// zlib's `deflate`, for `Z_NO_FLUSH` (input is gathered) and `Z_FINISH` (it is compressed and
/// written out; `Z_OK` while output is left, `Z_STREAM_END` once all of it is out).
///
/// # Safety
/// `strm` must be a stream set up by [`deflateInit2_`], with `next_in`/`avail_in` and
/// `next_out`/`avail_out` describing readable and writable memory.
#[no_mangle]
pub unsafe extern "C" fn deflate(strm: *mut z_stream, flush: c_int) -> c_int {
    // SAFETY: as documented.
    let Some((strm, stream)) = (unsafe { stream_of(strm) }) else { return Z_STREAM_ERROR };
    if flush != Z_NO_FLUSH && flush != Z_FINISH {
        strm.msg = c"only Z_NO_FLUSH and Z_FINISH are supported".as_ptr() as *mut c_char;
        return Z_STREAM_ERROR;
    }
    if strm.avail_in > 0 {
        if stream.phase != Phase::Gathering {
            return Z_STREAM_ERROR;
        }
        // SAFETY: the caller's next_in holds avail_in readable bytes.
        let input = unsafe { std::slice::from_raw_parts(strm.next_in, strm.avail_in as usize) };
        stream.input.extend_from_slice(input);
        strm.total_in += strm.avail_in as c_ulong;
        // SAFETY: advancing within the caller's buffer, to its end.
        strm.next_in = unsafe { strm.next_in.add(strm.avail_in as usize) };
        strm.avail_in = 0;
    }
    if flush == Z_NO_FLUSH {
        return Z_OK;
    }
    if stream.phase == Phase::Ended {
        return Z_STREAM_END;
    }
    if stream.phase == Phase::Gathering {
        // Straight into the caller's buffer when it is large enough (librdkafka's is, sized by
        // deflateBound); otherwise into ours, handed out below.
        // SAFETY: the caller's next_out holds avail_out writable bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(strm.next_out, strm.avail_out as usize) };
        match compress(stream, out) {
            Some(n) => {
                advance_out(strm, n);
                done(stream);
                return Z_STREAM_END;
            }
            None => {
                let mut output = vec![0; bound(stream, stream.input.len())];
                let n = compress(stream, &mut output).expect("a buffer of the bound's size holds the output");
                output.truncate(n);
                stream.output = output;
                stream.phase = Phase::Draining;
            }
        }
    }
    let left = &stream.output[stream.copied..];
    let n = left.len().min(strm.avail_out as usize);
    if n == 0 && !left.is_empty() {
        return Z_BUF_ERROR;
    }
    // SAFETY: n bytes fit in the caller's next_out (n <= avail_out); the buffers are distinct.
    unsafe { std::ptr::copy_nonoverlapping(left.as_ptr(), strm.next_out, n) };
    advance_out(strm, n);
    stream.copied += n;
    if stream.copied == stream.output.len() {
        stream.output = Vec::new();
        done(stream);
        Z_STREAM_END
    } else {
        Z_OK
    }
}

fn advance_out(strm: &mut z_stream, n: usize) {
    // SAFETY: n <= avail_out: still within the caller's buffer.
    strm.next_out = unsafe { strm.next_out.add(n) };
    strm.avail_out -= n as c_uint;
    strm.total_out += n as c_ulong;
}

/// A stream's output is all out: count it and give its input buffer back to the thread.
fn done(stream: &mut Stream) {
    stream.phase = Phase::Ended;
    FINISHED_STREAMS.fetch_add(1, Ordering::Relaxed);
    let mut input = std::mem::take(&mut stream.input);
    input.clear();
    SPARE_INPUT.with(|cell| {
        let mut spare = cell.borrow_mut();
        if input.capacity() > spare.capacity() {
            *spare = input;
        }
    });
}

/// zlib's `deflateEnd`: frees the stream.
///
/// # Safety
/// `strm` must be null or a stream set up by [`deflateInit2_`] and not ended yet.
#[no_mangle]
pub unsafe extern "C" fn deflateEnd(strm: *mut z_stream) -> c_int {
    // SAFETY: the caller passes a valid z_stream or null.
    let Some(strm) = (unsafe { strm.as_mut() }) else { return Z_STREAM_ERROR };
    if strm.state.is_null() {
        return Z_STREAM_ERROR;
    }
    // SAFETY: `state` is the Box deflateInit2_ leaked, taken back once (then cleared).
    drop(unsafe { Box::from_raw(strm.state as *mut Stream) });
    strm.state = std::ptr::null_mut();
    Z_OK
}

/// zlib's `inflateInit2_`, zlib-rs's.
///
/// # Safety
/// As zlib's.
#[no_mangle]
pub unsafe extern "C" fn inflateInit2_(
    strm: *mut z_stream,
    window_bits: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    // SAFETY: as zlib's.
    unsafe { libz_rs_sys::inflateInit2_(strm, window_bits, version, stream_size) }
}

/// zlib's `inflate`, zlib-rs's.
///
/// # Safety
/// As zlib's.
#[no_mangle]
pub unsafe extern "C" fn inflate(strm: *mut z_stream, flush: c_int) -> c_int {
    // SAFETY: as zlib's.
    unsafe { libz_rs_sys::inflate(strm, flush) }
}

/// zlib's `inflateEnd`, zlib-rs's.
///
/// # Safety
/// As zlib's.
#[no_mangle]
pub unsafe extern "C" fn inflateEnd(strm: *mut z_stream) -> c_int {
    // SAFETY: as zlib's.
    unsafe { libz_rs_sys::inflateEnd(strm) }
}

/// zlib's `crc32`, zlib-rs's.
///
/// # Safety
/// As zlib's: `buf` holds `len` readable bytes, or is null.
#[no_mangle]
pub unsafe extern "C" fn crc32(crc: c_ulong, buf: *const u8, len: c_uint) -> c_ulong {
    // SAFETY: as zlib's.
    unsafe { libz_rs_sys::crc32(crc, buf, len) }
}

/// zlib's `zlibVersion`, zlib-rs's (the inflate side's version).
#[no_mangle]
pub extern "C" fn zlibVersion() -> *const c_char {
    libz_rs_sys::zlibVersion()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{ClientConfig, Message, TopicPartitionList};
    use std::io::Read;
    use std::time::Duration;

    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("2026-11-27T08:{:02}:00Z INFO request {i} served in {} ms", i % 60, i * 7 % 1000))
            .collect()
    }

    /// librdkafka's gzip goes through this module, not through any other zlib: records produced
    /// with gzip into librdkafka's mock cluster finish streams here, `libz.so` is not loaded, and
    /// a consumer (librdkafka's inflate, zlib-rs's) reads every record back as it was sent.
    /// Fails if the link binds librdkafka to another deflate.
    #[test]
    fn librdkafka_gzips_through_libdeflate_and_reads_back() {
        let cluster = MockCluster::<'static, DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("gz", 1, 1).unwrap();
        let before = finished_streams();
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("compression.codec", "gzip")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let sent = lines(5000);
        for line in &sent {
            producer.send(BaseRecord::<(), str>::to("gz").payload(line.as_str())).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        assert!(finished_streams() > before, "librdkafka compressed elsewhere: no stream finished here");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains("libz.so"), "libz.so is loaded:\n{maps}");
        assert!(zlib_version().contains("zlib-rs"), "zlibVersion() is {:?}", zlib_version());

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "gz")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("gz", 0, rdkafka::Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < sent.len() && std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(got, sent);
    }

    /// Drives the C API as a zlib user would, with the input in pieces and an output buffer too
    /// small for the result (so the output comes out over several calls), for each wrapper; another
    /// implementation (miniz_oxide, through flate2) inflates the result.
    #[test]
    fn c_api_streams_in_pieces_and_hands_output_out_in_order() {
        let text = lines(3000).join("\n").into_bytes();
        for (bits, name) in [(31, "gzip"), (15, "zlib"), (-15, "raw")] {
            let mut strm: z_stream = unsafe { std::mem::zeroed() };
            let version = c"1.3.0";
            let size = size_of::<z_stream>() as c_int;
            assert_eq!(unsafe { deflateInit2_(&mut strm, 6, Z_DEFLATED, bits, 8, 0, version.as_ptr(), size) }, Z_OK);
            for piece in text.chunks(7_000) {
                strm.next_in = piece.as_ptr();
                strm.avail_in = piece.len() as c_uint;
                assert_eq!(unsafe { deflate(&mut strm, Z_NO_FLUSH) }, Z_OK);
                assert_eq!(strm.avail_in, 0);
            }
            let mut out = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                strm.next_out = buf.as_mut_ptr();
                strm.avail_out = buf.len() as c_uint;
                let r = unsafe { deflate(&mut strm, Z_FINISH) };
                out.extend_from_slice(&buf[..buf.len() - strm.avail_out as usize]);
                if r == Z_STREAM_END {
                    break;
                }
                assert_eq!(r, Z_OK, "{name}");
            }
            assert_eq!(strm.total_in as usize, text.len());
            assert_eq!(strm.total_out as usize, out.len());
            // Finished is finished: no more output, no second stream.
            strm.next_out = buf.as_mut_ptr();
            strm.avail_out = buf.len() as c_uint;
            assert_eq!(unsafe { deflate(&mut strm, Z_FINISH) }, Z_STREAM_END);
            assert_eq!(strm.total_out as usize, out.len());
            assert!(out.len() < text.len() / 3, "{name}: {} bytes", out.len());
            assert_eq!(unsafe { deflateEnd(&mut strm) }, Z_OK);
            let mut back = Vec::new();
            match name {
                "gzip" => flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back),
                "zlib" => flate2::read::ZlibDecoder::new(&out[..]).read_to_end(&mut back),
                _ => flate2::read::DeflateDecoder::new(&out[..]).read_to_end(&mut back),
            }
            .unwrap();
            assert!(back == text, "{name}: round trip differs");
        }
    }

    /// A flush mode libdeflate cannot honour is refused, not silently treated as another.
    #[test]
    fn other_flush_modes_are_refused() {
        let mut strm: z_stream = unsafe { std::mem::zeroed() };
        let size = size_of::<z_stream>() as c_int;
        assert_eq!(unsafe { deflateInit2_(&mut strm, -1, Z_DEFLATED, 31, 8, 0, c"1.3.0".as_ptr(), size) }, Z_OK);
        const Z_SYNC_FLUSH: c_int = 2;
        assert_eq!(unsafe { deflate(&mut strm, Z_SYNC_FLUSH) }, Z_STREAM_ERROR);
        assert!(!strm.msg.is_null());
        assert_eq!(unsafe { deflateEnd(&mut strm) }, Z_OK);
        assert_eq!(
            unsafe { deflateInit2_(&mut strm, 6, Z_DEFLATED, 31, 8, 0, c"0.9".as_ptr(), size) },
            Z_VERSION_ERROR
        );
    }
}
