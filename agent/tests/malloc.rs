//! The process's malloc settings (`agent::malloc`), in a test binary of their own: glibc's
//! counters are process-wide, so no other test may allocate beside this one.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn request_sized_blocks_keep_their_own_mapping_after_a_larger_one_was_freed() {
    use agent::malloc::{tune, Tuned, MMAP_THRESHOLD};
    if std::env::vars_os().any(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("MALLOC_"))) {
        eprintln!("skipped: the environment sets glibc's malloc, which agent::malloc leaves alone");
        return;
    }
    assert_eq!(tune(), Tuned::Applied);
    let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
    // SAFETY: plain malloc/free pairs; every block is freed once.
    unsafe {
        // glibc's dynamic threshold would rise to this block's size when it is freed.
        libc::free(libc::malloc(2 << 20));
        // A librdkafka request buffer (message set or its gzip output): its own mapping.
        let before = mapped();
        let request = libc::malloc(300 * 1024);
        let with_request = mapped();
        // zlib's hash head (128 KiB), allocated per compressed request: stays in the heap.
        let head = libc::malloc(128 * 1024 + 64);
        let with_head = mapped();
        libc::free(head);
        libc::free(request);
        assert!(
            with_request >= before + 300 * 1024,
            "300 KiB block not mapped: {before} -> {with_request} bytes mapped"
        );
        assert_eq!(with_head, with_request, "a block under {MMAP_THRESHOLD} bytes was mapped");
    }
}
