//! `kiln::memory::release_freed`, in a process of its own (the resident set is
//! the whole process's): small blocks freed below a block still in use stay
//! resident with glibc until the trim, which gives them back.

/// This process's resident set, in KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_trim_gives_freed_small_blocks_back() {
    let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![(i % 251) as u8; 4096]).collect();
    let kept = vec![1u8; 4096];
    let full = rss_kib();
    drop(blocks);
    let freed = rss_kib();
    assert!(kiln::memory::release_freed());
    let trimmed = rss_kib();
    eprintln!(
        "{full} KiB with 64 MiB of blocks, {freed} KiB after their frees, {trimmed} KiB after the trim"
    );
    // glibc kept the freed pages: the frees alone gave back less than half.
    assert!(freed + 32 * 1024 > full, "{full} -> {freed}");
    assert!(trimmed + 32 * 1024 < freed, "{freed} -> {trimmed}");
    assert_eq!(kept[4095], 1);
}
