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
int dv_cleanup_take_pending(void) { int s = dv_pending_signal; dv_pending_signal = 0; return s; }

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
int dv_block_zeroout(int fd, unsigned long long offset, unsigned long long length) {
    // A punched range of a block device reads as zeros afterwards, and is unmapped where the device can
    // (BLKZEROOUT never unmaps); a device that cannot punch is zeroed by BLKZEROOUT.
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0) return 0;
    if (errno != EOPNOTSUPP && errno != EINVAL) return -1;
    uint64_t range[2] = { offset, length };
    return ioctl(fd, BLKZEROOUT, range);
}

#include <sys/socket.h>
#include <sys/un.h>

/* The address of a unix socket at `path`: 0, or -1 with ENAMETOOLONG. */
static int dv_unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr->sun_path, path);
    return 0;
}

int dv_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (dv_unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int r;
    do { r = connect(fd, (struct sockaddr *)&addr, sizeof addr); } while (r != 0 && errno == EINTR);
    if (r != 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/stat.h>

int dv_unix_listen(const char *path) {
    struct sockaddr_un addr;
    if (dv_unix_address(path, &addr) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    // Private from the start: the socket file is made under this umask, before listen.
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (r != 0 || listen(fd, 64) != 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

int dv_tcp_listen(const char *host, int port, int *bound) {
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535) { errno = EINVAL; return -1; }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET; v4->sin_port = htons(port); len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6; v6->sin6_port = htons(port); len = sizeof *v6;
    } else { errno = EINVAL; return -1; }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) { int e = errno; close(fd); errno = e; return -1; }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) { int e = errno; close(fd); errno = e; return -1; }
    *bound = ss.ss_family == AF_INET ? ntohs(v4->sin_port) : ntohs(v6->sin6_port);
    return fd;
}

int dv_accept(int listen_fd, int timeout_ms) {
    struct pollfd p = { .fd = listen_fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? -2 : -1;
    if (r == 0) return -2;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) ? -2 : -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int dv_peer_pid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return cred.pid;
}

// ---- Servers started with a socket handed to them (systemd socket activation) ----------------------------------
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int dv_activation_sockets(int *listen_fd, int *client_fd) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (snprintf(dir, sizeof dir, "%s/diskvault-nbd-XXXXXX", base) >= (int)sizeof dir - 2) { errno = ENAMETOOLONG; return -1; }
    if (mkdtemp(dir) == NULL) return -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/s", dir) >= (int)sizeof addr.sun_path) {
        rmdir(dir); errno = ENAMETOOLONG; return -1;
    }
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), c = -1, e = 0;
    if (l < 0) { e = errno; goto out; }
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(l, 1) != 0) { e = errno; goto out; }
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) { e = errno; goto out; }
    int r;
    do { r = connect(c, (struct sockaddr *)&addr, sizeof addr); } while (r != 0 && errno == EINTR);
    if (r != 0) e = errno;
out:
    unlink(addr.sun_path);
    rmdir(dir);
    if (e != 0) {
        if (l >= 0) close(l);
        if (c >= 0) close(c);
        errno = e;
        return -1;
    }
    *listen_fd = l;
    *client_fd = c;
    return 0;
}

// One thread that lives as long as the process forks every such server: PR_SET_PDEATHSIG fires when the thread
// that forked the child ends, so forking from a worker thread that might end would stop the server early.
struct dv_spawn_request {
    char *const *argv;
    int listen_fd;
    pid_t pid;
    int error;
    int done;
};
static pthread_mutex_t dv_spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dv_spawn_cond = PTHREAD_COND_INITIALIZER;
static struct dv_spawn_request *dv_spawn_pending;
static int dv_spawner_started;
extern char **environ;

static void dv_spawn_now(struct dv_spawn_request *q) {
    // Everything the child needs is built here, before fork: after it, only async-signal-safe calls.
    size_t n = 0;
    for (char **e = environ; e && *e; e++) n++;
    char **envp = calloc(n + 3, sizeof *envp);
    static char pid_entry[32];
    if (envp == NULL) { q->error = ENOMEM; q->pid = -1; return; }
    size_t k = 0;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "LISTEN_", 7) == 0) continue;
        envp[k++] = *e;
    }
    envp[k++] = "LISTEN_FDS=1";
    envp[k++] = pid_entry;
    envp[k] = NULL;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
        // LISTEN_PID is the child's own pid, written without printf.
        char digits[16]; int d = 0; unsigned long v = (unsigned long)getpid();
        do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v && d < 16);
        memcpy(pid_entry, "LISTEN_PID=", 11);
        for (int i = 0; i < d; i++) pid_entry[11 + i] = digits[d - 1 - i];
        pid_entry[11 + d] = '\0';
        if (devnull >= 0) dup2(devnull, 0);
        if (q->listen_fd == 3) { int fl = fcntl(3, F_GETFD); fcntl(3, F_SETFD, fl & ~FD_CLOEXEC); }
        else if (dup2(q->listen_fd, 3) != 3) _exit(127);
        // Nothing else of this process reaches the server: not a vault's lock, not a pipe.
        if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0) { for (int fd = 4; fd < 65536; fd++) close(fd); }
        execve(q->argv[0], q->argv, envp);
        _exit(127);
    }
    q->error = pid < 0 ? errno : 0;
    q->pid = pid;
    if (devnull >= 0) close(devnull);
    free(envp);
}

static void *dv_spawner(void *unused) {
    (void)unused;
    pthread_mutex_lock(&dv_spawn_lock);
    for (;;) {
        while (dv_spawn_pending == NULL) pthread_cond_wait(&dv_spawn_cond, &dv_spawn_lock);
        struct dv_spawn_request *q = dv_spawn_pending;
        dv_spawn_pending = NULL;
        dv_spawn_now(q);
        q->done = 1;
        pthread_cond_broadcast(&dv_spawn_cond);
    }
    return NULL;
}

pid_t dv_spawn_activated(char *const argv[], int listen_fd) {
    struct dv_spawn_request q = { argv, listen_fd, -1, 0, 0 };
    pthread_mutex_lock(&dv_spawn_lock);
    if (!dv_spawner_started) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &attr, dv_spawner, NULL);
        pthread_attr_destroy(&attr);
        if (r != 0) { pthread_mutex_unlock(&dv_spawn_lock); errno = r; return -1; }
        dv_spawner_started = 1;
    }
    while (dv_spawn_pending != NULL) pthread_cond_wait(&dv_spawn_cond, &dv_spawn_lock);
    dv_spawn_pending = &q;
    pthread_cond_broadcast(&dv_spawn_cond);
    while (!q.done) pthread_cond_wait(&dv_spawn_cond, &dv_spawn_lock);
    pthread_mutex_unlock(&dv_spawn_lock);
    if (q.pid < 0) errno = q.error;
    return q.pid;
}

int dv_wait_child(pid_t pid, int timeout_ms) {
    for (int waited = 0;; waited += 10) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return status;
        }
        usleep(10000);
    }
}
