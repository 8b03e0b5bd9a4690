# Makes the benchmark's images, sourced by scripts/bench. Everything is built from real files of this
# machine with the real tools (mkfs.ext4 -d, qemu-img convert -O luks, dd into a truncated file).
#
#   bench_make_images DIR FS_MIB FILL_BYTES SPARSE_GIB EXTENTS EXTENT_MIB
# writes into DIR (which it empties first):
#   plain.img     ext4 file system of FS_MIB MiB holding about FILL_BYTES bytes of real files
#   luks.img      the same, encrypted as LUKS1 by qemu-img (passphrase in luks.pass)
#   sparse.img    a SPARSE_GIB GiB sparse file with EXTENTS extents of EXTENT_MIB MiB of real data
#   images.done   written last: the parameters the images were made with

BENCH_FILE_ROOTS=(/usr/share/doc /usr/lib /usr/share /usr/bin /usr/libexec /usr/include /opt/swift)

# All regular files under the roots that exist, in a fixed pseudo-random order (so that each image mixes
# text, binaries and compressed files), one "SIZE<TAB>PATH" a line, paths without the leading slash.
_bench_file_list() {
    local roots=() r
    for r in "${BENCH_FILE_ROOTS[@]}"; do [ -d "$r" ] && roots+=("$r"); done
    find "${roots[@]}" -xdev -type f -readable -size -256M ! -name $'*\n*' -printf '%s\t%p\n' 2>/dev/null \
        | awk -F'\t' '!seen[$2]++ { sub(/^\//, "", $2); print $1 "\t" $2 }' \
        | sort -R --random-source=<(yes diskvault-bench 2>/dev/null) -t$'\t' -k2,2
}

bench_make_images() {
    local dir=$1 fs_mib=$2 fill=$3 sparse_gib=$4 extents=$5 extent_mib=$6
    rm -rf "$dir" && mkdir -p "$dir" || return 1
    local list="$dir/files.txt"
    _bench_file_list > "$list"
    [ -s "$list" ] || { echo "no files found under ${BENCH_FILE_ROOTS[*]}" >&2; return 1; }
    # The first FILL bytes of files (counted in 4 KiB blocks, as ext4 will store them) go into the file
    # system; the files after them feed the sparse file's extents.
    awk -F'\t' -v fill="$fill" -v out1="$dir/fs-files.txt" -v out2="$dir/sparse-files.txt" '
        { blocks = int(($1 + 4095) / 4096) * 4096
          if (total + blocks <= fill) { total += blocks; print $2 > out1 } else print $2 > out2 }' "$list"
    echo "   ext4 ${fs_mib} MiB: $(wc -l < "$dir/fs-files.txt") real files" >&2
    mkdir "$dir/tree" || return 1
    tar -C / -cf - --no-recursion --verbatim-files-from -T "$dir/fs-files.txt" 2>/dev/null \
        | tar -C "$dir/tree" -xf - 2>/dev/null
    echo "   ($(du -sb "$dir/tree" | cut -f1) bytes copied)" >&2
    mkfs.ext4 -q -F -d "$dir/tree" "$dir/plain.img" "${fs_mib}M" >/dev/null \
        || { echo "mkfs.ext4 could not make the ${fs_mib} MiB file system" >&2; return 1; }
    rm -rf "$dir/tree"

    # LUKS1 through qemu-img; its key-slot timing fails now and then ("Unable to get accurate CPU usage").
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/luks.pass"
    local try err
    for try in 1 2 3 4 5 6 7 8 9 10; do
        err=$(qemu-img convert -O luks --object "secret,id=sec0,file=$dir/luks.pass" \
            -o key-secret=sec0,iter-time=150 "$dir/plain.img" "$dir/luks.img" 2>&1) && break
        rm -f "$dir/luks.img"
        [ "$try" = 10 ] && { echo "qemu-img could not make the LUKS image: $err" >&2; return 1; }
    done

    # The sparse file: EXTENTS extents of real data (a tar stream of real files) spread over the file,
    # each a few MiB off a round offset so that not every extent starts on a chunk boundary.
    local size_mib=$(( sparse_gib * 1024 )) i off
    truncate -s "${sparse_gib}G" "$dir/sparse.img" || return 1
    {
        for i in $(seq 0 $(( extents - 1 ))); do
            off=$(( i * size_mib / extents + i * 3 ))
            dd of="$dir/sparse.img" bs=1M seek="$off" count="$extent_mib" iflag=fullblock conv=notrunc status=none
            echo "$(( off * 1048576 )) $(( extent_mib * 1048576 ))" >> "$dir/sparse-extents.txt"
        done
    } < <(tar -C / -cf - --no-recursion --verbatim-files-from -T "$dir/sparse-files.txt" 2>/dev/null;
          tar -C / -cf - --no-recursion --verbatim-files-from -T "$dir/fs-files.txt" 2>/dev/null)
    local want=$(( extents * extent_mib * 1048576 )) got
    got=$(( $(stat -c '%b' "$dir/sparse.img") * $(stat -c '%B' "$dir/sparse.img") ))
    [ "$got" -ge "$want" ] || { echo "the sparse file got $got bytes of data, not $want: too few real files" >&2; return 1; }
    rm -f "$list"
}
