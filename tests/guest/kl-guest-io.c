/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kl-guest-io: the I/O helper of the kvm-launch test guest.
 *
 * Built static (gcc -static -O2 -pthread) and packed into the guest initramfs by build-guest.sh.  The same binary
 * runs on the host for `verify` (it is static, so it needs nothing from the host's libc).
 *
 *   kl-guest-io randio DEV QD SECONDS [rw|r|w] [uring|threads]
 *       4 KiB random I/O with O_DIRECT at queue depth QD.  Engine io_uring (raw syscalls, no liburing) by default,
 *       falling back to QD threads doing pread/pwrite if io_uring_setup() fails.  Prints
 *       `KL randio dev=vda qd=8 mode=r iops=NNNN` and `KL randio-detail dev=vda engine=uring ios=N secs=S`.
 *   kl-guest-io seq DEV SECONDS [r|w]
 *       1 MiB sequential O_DIRECT I/O, wrapping at the end of the device.  Prints `KL seq dev=vda mode=r mbps=NNN`.
 *   kl-guest-io pattern DEV SEED MIB [AT [noflush]]
 *       Writes the deterministic pattern over MIB MiB from MiB AT (default 0) with O_DIRECT, then fsync() (a flush
 *       request to the virtual disk when its write cache is on), then prints `KL flushed dev=vda seed=SEED mib=N`
 *       (` at=AT` when AT is given).  With noflush there is no fsync and the line is `KL unflushed ...`.
 *   kl-guest-io verify FILE SEED MIB [AT]
 *       Host side: checks the pattern (MIB MiB from MiB AT); prints `OK` (exit 0) or `BAD offset=N ...` (exit 1).
 *       Exit 2 on usage or I/O errors.
 *
 * DEV is a name under /dev (vda) or a path.  The pattern: every 8-byte little-endian word at byte offset o holds
 * mix64(seed ^ (o * 0x9E3779B97F4A7C15)), so any word that is stale, shifted or zero is detected with its offset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BS4K 4096u
#define SEQ_BS (1024u * 1024u)
#define MAX_QD 256

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("KL error ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix64(uint64_t z)
{
    /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t pattern_word(uint64_t seed, uint64_t off)
{
    return mix64(seed ^ (off * 0x9E3779B97F4A7C15ull));
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed, uint64_t off)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = pattern_word(seed, off + i);
        for (int b = 0; b < 8; b++)
            buf[i + (size_t)b] = (unsigned char)(w >> (8 * b));
    }
}

static const char *dev_path(const char *dev, char *buf, size_t len)
{
    if (strchr(dev, '/'))
        return dev;
    snprintf(buf, len, "/dev/%s", dev);
    return buf;
}

static const char *dev_name(const char *dev)
{
    const char *s = strrchr(dev, '/');
    return s ? s + 1 : dev;
}

static uint64_t dev_size(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("stat %s: %s", path, strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz = 0;
        if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
            die("BLKGETSIZE64 %s: %s", path, strerror(errno));
        return sz;
    }
    return (uint64_t)st.st_size;
}

static void *xaligned(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, BS4K, len) != 0)
        die("posix_memalign %zu: out of memory", len);
    memset(p, 0, len);
    return p;
}

static unsigned long parse_ul(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || end == s || *end)
        die("bad %s: '%s'", what, s);
    return v;
}

static uint64_t parse_seed(const char *s)
{
    char *end = NULL;
    errno = 0;
    uint64_t v = strtoull(s, &end, 0);
    if (errno || end == s || *end)
        die("bad seed: '%s' (want a decimal or 0x number)", s);
    return v;
}

/* xorshift64*: cheap per-worker offset generator */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* mode: 'r', 'w' or 'm' (mixed, 50/50) */
static int pick_write(char mode, uint64_t *s)
{
    if (mode == 'r')
        return 0;
    if (mode == 'w')
        return 1;
    return (rnd(s) >> 33) & 1;
}

static char parse_mode(const char *s, int allow_mixed)
{
    if (!strcmp(s, "r"))
        return 'r';
    if (!strcmp(s, "w"))
        return 'w';
    if (allow_mixed && !strcmp(s, "rw"))
        return 'm';
    die("bad mode '%s' (want %s)", s, allow_mixed ? "r, w or rw" : "r or w");
}

static const char *mode_str(char m)
{
    return m == 'r' ? "r" : m == 'w' ? "w" : "rw";
}

/* ---------- randio, thread engine ---------- */

struct rworker {
    int fd;
    char mode;
    uint64_t nblocks;
    double deadline;
    uint64_t seed;
    uint64_t ios;
    int err;
};

static void *rworker_main(void *arg)
{
    struct rworker *w = arg;
    unsigned char *buf = xaligned(BS4K);
    memset(buf, 0xA5, BS4K);
    unsigned n = 0;
    while (1) {
        /* check the clock every 16 I/Os: clock_gettime is not free under TCG */
        if ((n++ & 15) == 0 && now_s() >= w->deadline)
            break;
        off_t off = (off_t)((rnd(&w->seed) % w->nblocks) * BS4K);
        ssize_t r = pick_write(w->mode, &w->seed) ? pwrite(w->fd, buf, BS4K, off) : pread(w->fd, buf, BS4K, off);
        if (r != (ssize_t)BS4K) {
            w->err = r < 0 ? errno : EIO;
            break;
        }
        w->ios++;
    }
    free(buf);
    return NULL;
}

static int randio_threads(int fd, char mode, unsigned qd, uint64_t nblocks, double secs, uint64_t *ios_out,
                          double *elapsed)
{
    struct rworker w[MAX_QD];
    pthread_t th[MAX_QD];
    double t0 = now_s();
    for (unsigned i = 0; i < qd; i++) {
        w[i] = (struct rworker){.fd = fd, .mode = mode, .nblocks = nblocks, .deadline = t0 + secs,
                                .seed = 0x1234567ull + i * 0x9E3779B97F4A7C15ull};
        int e = pthread_create(&th[i], NULL, rworker_main, &w[i]);
        if (e)
            die("pthread_create: %s", strerror(e));
    }
    uint64_t ios = 0;
    int err = 0;
    for (unsigned i = 0; i < qd; i++) {
        pthread_join(th[i], NULL);
        ios += w[i].ios;
        if (w[i].err)
            err = w[i].err;
    }
    *elapsed = now_s() - t0;
    *ios_out = ios;
    if (err)
        die("randio: I/O error: %s", strerror(err));
    return 0;
}

/* ---------- randio, io_uring engine (raw syscalls) ---------- */

struct uring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int uring_init(struct uring *u, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (fd < 0)
        return -1;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    unsigned char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    unsigned char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        close(fd);
        return -1;
    }
    u->fd = fd;
    u->sq_head = (unsigned *)(sq + p.sq_off.head);
    u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    u->sq_array = (unsigned *)(sq + p.sq_off.array);
    u->cq_head = (unsigned *)(cq + p.cq_off.head);
    u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    u->sqes = sqes;
    return 0;
}

/* Queue one 4 KiB read or write of buffer `slot` (user_data = slot). Caller submits. */
static void uring_queue(struct uring *u, int fd, int write, void *buf, uint64_t off, unsigned slot)
{
    unsigned tail = *u->sq_tail; /* only we write the SQ tail */
    unsigned idx = tail & *u->sq_mask;
    struct io_uring_sqe *sqe = &u->sqes[idx];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = BS4K;
    sqe->off = off;
    sqe->user_data = slot;
    u->sq_array[idx] = idx;
    atomic_store_explicit((_Atomic unsigned *)u->sq_tail, tail + 1, memory_order_release);
}

static int randio_uring(int fd, char mode, unsigned qd, uint64_t nblocks, double secs, uint64_t *ios_out,
                        double *elapsed)
{
    struct uring u;
    if (uring_init(&u, qd) < 0)
        return -1;
    unsigned char *bufs = xaligned((size_t)qd * BS4K);
    memset(bufs, 0x5A, (size_t)qd * BS4K);
    uint64_t seed = 0x1234567ull, ios = 0;
    double t0 = now_s(), deadline = t0 + secs;
    unsigned inflight = 0, to_submit = 0, n = 0;
    int stopping = 0;

    for (unsigned i = 0; i < qd; i++) {
        uring_queue(&u, fd, pick_write(mode, &seed), bufs + (size_t)i * BS4K, (rnd(&seed) % nblocks) * BS4K, i);
        to_submit++;
        inflight++;
    }
    while (inflight > 0) {
        long r = syscall(__NR_io_uring_enter, u.fd, to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("io_uring_enter: %s", strerror(errno));
        }
        to_submit -= (unsigned)r;
        unsigned head = *u.cq_head;
        unsigned tail = atomic_load_explicit((_Atomic unsigned *)u.cq_tail, memory_order_acquire);
        for (; head != tail; head++) {
            struct io_uring_cqe *cqe = &u.cqes[head & *u.cq_mask];
            if (cqe->res != (int)BS4K)
                die("randio: I/O error: %s", cqe->res < 0 ? strerror(-cqe->res) : "short I/O");
            unsigned slot = (unsigned)cqe->user_data;
            inflight--;
            ios++;
            if (!stopping && (n++ & 15) == 0 && now_s() >= deadline)
                stopping = 1;
            if (!stopping) {
                uring_queue(&u, fd, pick_write(mode, &seed), bufs + (size_t)slot * BS4K,
                            (rnd(&seed) % nblocks) * BS4K, slot);
                to_submit++;
                inflight++;
            }
        }
        atomic_store_explicit((_Atomic unsigned *)u.cq_head, head, memory_order_release);
    }
    *elapsed = now_s() - t0;
    *ios_out = ios;
    close(u.fd);
    free(bufs);
    return 0;
}

static int cmd_randio(int argc, char **argv)
{
    if (argc < 4 || argc > 6)
        die("usage: randio DEV QD SECONDS [rw|r|w] [uring|threads]");
    char pbuf[256];
    const char *path = dev_path(argv[1], pbuf, sizeof pbuf);
    unsigned long qd = parse_ul(argv[2], "queue depth");
    unsigned long secs = parse_ul(argv[3], "seconds");
    char mode = argc > 4 ? parse_mode(argv[4], 1) : 'r';
    const char *engine = argc > 5 ? argv[5] : "uring";
    if (qd < 1 || qd > MAX_QD)
        die("queue depth must be 1..%d", MAX_QD);
    if (strcmp(engine, "uring") && strcmp(engine, "threads"))
        die("bad engine '%s' (want uring or threads)", engine);

    int fd = open(path, (mode == 'r' ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    uint64_t nblocks = dev_size(fd, path) / BS4K;
    if (nblocks == 0)
        die("%s: smaller than 4 KiB", path);

    uint64_t ios = 0;
    double el = 0;
    if (!strcmp(engine, "uring") && randio_uring(fd, mode, (unsigned)qd, nblocks, (double)secs, &ios, &el) < 0)
        engine = "threads"; /* io_uring unavailable (disabled, seccomp): fall back */
    if (!strcmp(engine, "threads"))
        randio_threads(fd, mode, (unsigned)qd, nblocks, (double)secs, &ios, &el);
    close(fd);
    printf("KL randio dev=%s qd=%lu mode=%s iops=%.0f\n", dev_name(path), qd, mode_str(mode), (double)ios / el);
    printf("KL randio-detail dev=%s engine=%s ios=%" PRIu64 " secs=%.3f\n", dev_name(path), engine, ios, el);
    return 0;
}

/* ---------- seq ---------- */

static int cmd_seq(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        die("usage: seq DEV SECONDS [r|w]");
    char pbuf[256];
    const char *path = dev_path(argv[1], pbuf, sizeof pbuf);
    unsigned long secs = parse_ul(argv[2], "seconds");
    char mode = argc > 3 ? parse_mode(argv[3], 0) : 'r';
    int fd = open(path, (mode == 'r' ? O_RDONLY : O_WRONLY) | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    uint64_t nchunks = dev_size(fd, path) / SEQ_BS;
    if (nchunks == 0)
        die("%s: smaller than 1 MiB", path);
    unsigned char *buf = xaligned(SEQ_BS);
    memset(buf, 0x3C, SEQ_BS);
    uint64_t bytes = 0, chunk = 0;
    double t0 = now_s(), deadline = t0 + (double)secs;
    while (now_s() < deadline) {
        off_t off = (off_t)(chunk * SEQ_BS);
        ssize_t r = mode == 'w' ? pwrite(fd, buf, SEQ_BS, off) : pread(fd, buf, SEQ_BS, off);
        if (r != (ssize_t)SEQ_BS)
            die("seq: I/O error at %lld: %s", (long long)off, r < 0 ? strerror(errno) : "short I/O");
        bytes += SEQ_BS;
        chunk = (chunk + 1) % nchunks;
    }
    if (mode == 'w' && fsync(fd) < 0)
        die("fsync %s: %s", path, strerror(errno));
    double el = now_s() - t0;
    close(fd);
    free(buf);
    printf("KL seq dev=%s mode=%s mbps=%.0f\n", dev_name(path), mode_str(mode), (double)bytes / (1024.0 * 1024.0) / el);
    return 0;
}

/* ---------- pattern / verify ---------- */

static int cmd_pattern(int argc, char **argv)
{
    if (argc < 4 || argc > 6 || (argc == 6 && strcmp(argv[5], "noflush") != 0))
        die("usage: pattern DEV SEED MIB [AT [noflush]]");
    char pbuf[256];
    const char *path = dev_path(argv[1], pbuf, sizeof pbuf);
    uint64_t seed = parse_seed(argv[2]);
    unsigned long mib = parse_ul(argv[3], "MiB count");
    unsigned long at = argc >= 5 ? parse_ul(argv[4], "MiB offset") : 0;
    int flush = argc < 6;
    int fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    if (dev_size(fd, path) < ((uint64_t)at + mib) * SEQ_BS)
        die("%s: smaller than %lu MiB", path, at + mib);
    unsigned char *buf = xaligned(SEQ_BS);
    for (uint64_t off = (uint64_t)at * SEQ_BS; off < ((uint64_t)at + mib) * SEQ_BS; off += SEQ_BS) {
        fill_pattern(buf, SEQ_BS, seed, off);
        ssize_t r = pwrite(fd, buf, SEQ_BS, (off_t)off);
        if (r != (ssize_t)SEQ_BS)
            die("pattern: write at %" PRIu64 ": %s", off, r < 0 ? strerror(errno) : "short write");
    }
    /* fsync on a block device sends REQ_PREFLUSH: the virtual disk sees a flush if its write cache is on.
     * Without it (noflush) the O_DIRECT writes have completed but nothing asked for them to be durable; close()
     * of a block device opened O_DIRECT flushes nothing. */
    if (flush && fsync(fd) < 0)
        die("fsync %s: %s", path, strerror(errno));
    close(fd);
    free(buf);
    if (argc >= 5)
        printf("KL %s dev=%s seed=%s mib=%lu at=%lu\n", flush ? "flushed" : "unflushed", dev_name(path), argv[2],
               mib, at);
    else
        printf("KL flushed dev=%s seed=%s mib=%lu\n", dev_name(path), argv[2], mib);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: kl-guest-io verify FILE SEED MIB [AT]\n");
        return 2;
    }
    const char *path = argv[1];
    uint64_t seed = parse_seed(argv[2]);
    unsigned long mib = parse_ul(argv[3], "MiB count");
    uint64_t at = argc == 5 ? (uint64_t)parse_ul(argv[4], "MiB offset") * SEQ_BS : 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "verify: open %s: %s\n", path, strerror(errno));
        return 2;
    }
    unsigned char *buf = xaligned(SEQ_BS), *want = xaligned(SEQ_BS);
    for (uint64_t off = at; off < at + (uint64_t)mib * SEQ_BS; off += SEQ_BS) {
        ssize_t r = pread(fd, buf, SEQ_BS, (off_t)off);
        if (r < 0) {
            fprintf(stderr, "verify: read %s at %" PRIu64 ": %s\n", path, off, strerror(errno));
            return 2;
        }
        if (r < (ssize_t)SEQ_BS)
            memset(buf + r, 0, SEQ_BS - (size_t)r); /* short file: the missing tail counts as zeros */
        fill_pattern(want, SEQ_BS, seed, off);
        if (memcmp(buf, want, SEQ_BS) != 0) {
            size_t i = 0;
            while (buf[i] == want[i])
                i++;
            printf("BAD offset=%" PRIu64 " got=0x%02x want=0x%02x\n", off + i, buf[i], want[i]);
            return 1;
        }
    }
    close(fd);
    free(buf);
    free(want);
    printf("OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: kl-guest-io randio|seq|pattern|verify ARGS...\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "randio"))
        return cmd_randio(argc - 1, argv + 1);
    if (!strcmp(cmd, "seq"))
        return cmd_seq(argc - 1, argv + 1);
    if (!strcmp(cmd, "pattern"))
        return cmd_pattern(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - 1, argv + 1);
    fprintf(stderr, "kl-guest-io: unknown command '%s'\n", cmd);
    return 2;
}
