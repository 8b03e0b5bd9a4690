#define _GNU_SOURCE
#include "CLinux.h"
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
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

#define DV_CLEANUP_SLOTS 64
static char *volatile dv_cleanup_paths[DV_CLEANUP_SLOTS];
static pthread_mutex_t dv_cleanup_lock = PTHREAD_MUTEX_INITIALIZER;

int dv_cleanup_register(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    pthread_mutex_lock(&dv_cleanup_lock);
    for (int i = 0; i < DV_CLEANUP_SLOTS; i++) {
        if (!dv_cleanup_paths[i]) {
            dv_cleanup_paths[i] = copy;
            pthread_mutex_unlock(&dv_cleanup_lock);
            return i;
        }
    }
    pthread_mutex_unlock(&dv_cleanup_lock);
    free(copy);
    return -1;
}

void dv_cleanup_unregister(int slot) {
    if (slot < 0 || slot >= DV_CLEANUP_SLOTS) return;
    pthread_mutex_lock(&dv_cleanup_lock);
    char *p = dv_cleanup_paths[slot];
    dv_cleanup_paths[slot] = NULL;
    pthread_mutex_unlock(&dv_cleanup_lock);
    free(p);
}

/* While deferred, the first signal is only recorded (the run unwinds and tears down what it set up in another
   process, then calls dv_cleanup_raise_pending); a second one acts at once. */
static volatile sig_atomic_t dv_defer_depth = 0;
static volatile sig_atomic_t dv_pending_signal = 0;

void dv_cleanup_defer(int on) { dv_defer_depth += on ? 1 : -1; }
int dv_cleanup_pending(void) { return dv_pending_signal; }

static void dv_cleanup_act(int sig) {
    for (int i = 0; i < DV_CLEANUP_SLOTS; i++) {
        char *p = dv_cleanup_paths[i];
        if (p) unlink(p);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Only async-signal-safe calls: unlink, signal, raise. */
static void dv_cleanup_handler(int sig) {
    if (dv_defer_depth > 0 && dv_pending_signal == 0) {
        dv_pending_signal = sig;
        return;
    }
    dv_cleanup_act(sig);
}

void dv_cleanup_raise_pending(void) {
    int sig = dv_pending_signal;
    if (sig != 0 && dv_defer_depth == 0) dv_cleanup_act(sig);
}

void dv_cleanup_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dv_cleanup_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}
int dv_o_direct(void) { return O_DIRECT; }

/* An OFD lock request on `length` bytes at `start`; l_pid must be 0 for OFD locks. */
static struct flock dv_byte_range(short type, long long start, long long length) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = length;
    return fl;
}

int dv_ofd_lock(int fd, int shared, long long start, long long length) {
    struct flock fl = dv_byte_range(shared ? F_RDLCK : F_WRLCK, start, length);
    return fcntl(fd, F_OFD_SETLK, &fl);
}

int dv_ofd_conflict(int fd, int exclusive, long long start, long long length, int *held) {
    struct flock fl = dv_byte_range(exclusive ? F_WRLCK : F_RDLCK, start, length);
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
    if (fl.l_type == F_UNLCK) return 0;
    *held = fl.l_type == F_WRLCK ? 1 : 0;
    return 1;
}

int dv_o_excl(void) { return O_EXCL; }

#include <sys/socket.h>
#include <sys/un.h>

int dv_unix_connect(const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int r;
    do { r = connect(fd, (struct sockaddr *)&addr, sizeof addr); } while (r != 0 && errno == EINTR);
    if (r != 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

int dv_peer_pid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return cred.pid;
}
