# Hole-aware file helpers for scripts/bench, sourced. Reading a 64 GiB file that is mostly holes through
# read(2) costs minutes (the kernel hands out zero pages one by one), so these walk a file's data with
# SEEK_DATA/SEEK_HOLE instead. A file system without SEEK_DATA falls back to "all of it is data".
#
#   sparse_read FILE        read every data byte of FILE once (to warm the page cache)
#   sparse_cmp A B          exit 0 when A and B hold the same bytes (same size; holes read as zeros),
#                           1 with the first differing offset on standard error when they do not
#   data_chunk_bytes FILE CHUNK   bytes of the CHUNK-sized, CHUNK-aligned pieces of FILE that hold data:
#                           what a restore that leaves every chunk of zeros as a hole allocates at most
#   allocated_bytes FILE    bytes the file system allocated for FILE

_bench_sparse_py() {
    /usr/bin/python3 - "$@" <<'PY'
import errno, os, sys

BLOCK = 8 << 20

def data_ranges(fd, size):
    out, off = [], 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return [(0, size)]
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, min(end, size)))
        off = end
    return out

def merged(a, b):
    out = []
    for s, e in sorted(a + b):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out

mode = sys.argv[1]
if mode == "read":
    fd = os.open(sys.argv[2], os.O_RDONLY)
    size = os.fstat(fd).st_size
    total = 0
    for s, e in data_ranges(fd, size):
        off = s
        while off < e:
            n = len(os.pread(fd, min(BLOCK, e - off), off))
            if n == 0:
                break
            off += n
            total += n
    print(total)
elif mode == "cmp":
    fa, fb = os.open(sys.argv[2], os.O_RDONLY), os.open(sys.argv[3], os.O_RDONLY)
    sa, sb = os.fstat(fa).st_size, os.fstat(fb).st_size
    if sa != sb:
        print(f"sizes differ: {sa} and {sb}", file=sys.stderr)
        sys.exit(1)
    for s, e in merged(data_ranges(fa, sa), data_ranges(fb, sb)):
        off = s
        while off < e:
            n = min(BLOCK, e - off)
            x, y = os.pread(fa, n, off), os.pread(fb, n, off)
            if x != y:
                i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
                print(f"first difference at byte {off + i}", file=sys.stderr)
                sys.exit(1)
            off += n
    sys.exit(0)
elif mode == "chunks":
    fd, chunk = os.open(sys.argv[2], os.O_RDONLY), int(sys.argv[3])
    size = os.fstat(fd).st_size
    touched = set()
    for s, e in data_ranges(fd, size):
        touched.update(range(s // chunk, (e - 1) // chunk + 1))
    print(sum(min(chunk, size - c * chunk) for c in touched))
else:
    sys.exit(f"unknown mode {mode}")
PY
}

sparse_read() { _bench_sparse_py read "$1" >/dev/null; }
sparse_cmp() { _bench_sparse_py cmp "$1" "$2"; }
data_chunk_bytes() { _bench_sparse_py chunks "$1" "$2"; }
allocated_bytes() { echo $(( $(stat -c '%b' "$1") * $(stat -c '%B' "$1") )); }
