#define _GNU_SOURCE
#include "CLinux.h"
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/fs.h>

off_t dv_seek_data(int fd, off_t offset) { return lseek(fd, offset, SEEK_DATA); }
off_t dv_seek_hole(int fd, off_t offset) { return lseek(fd, offset, SEEK_HOLE); }
int dv_syncfs(int fd) { return syncfs(fd); }
int dv_rename_noreplace(int fromdir, const char *from, int todir, const char *to) {
    return renameat2(fromdir, from, todir, to, RENAME_NOREPLACE);
}
int dv_fadvise_sequential(int fd) { return posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); }
int dv_block_device_size(int fd, unsigned long long *size) {
    uint64_t s = 0;
    if (ioctl(fd, BLKGETSIZE64, &s) != 0) return -1;
    *size = s;
    return 0;
}
int dv_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int dv_start_writeback(int fd, long long offset, long long length) { return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE); }
