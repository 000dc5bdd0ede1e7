/*
 * bs_client.c - the beanstalkd peer: put + reserve + delete cycles over
 * plain TCP sockets, one thread per connection.
 *
 * Each connection repeats, for --seconds after --warmup:
 *   P x "put 1024 0 60 <n>\r\n<body>\r\n"      -> P x "INSERTED <id>"
 *   P x "reserve-with-timeout 0\r\n"            -> P x "RESERVED <id> <n>\r\n<body>"
 *   P x "delete <id>\r\n"                       -> P x "DELETED"
 * P (--pipeline) = 1 is the plain synchronous client (3 round trips per
 * job); P > 1 writes P commands at once and then reads P replies, which is
 * the best a beanstalkd client can do on one connection (beanstalkd reads
 * pipelined commands in order). A cycle is one deleted job.
 *
 * Output: "RESULT <label> conns=.. pipeline=.. cycles=.. seconds=.. rate=..
 * p50_us=.. p99_us=.." (cycle latency: put sent -> delete acknowledged, per
 * group of P). Usage: bs_client --port N [--conns C] [--pipeline P]
 * [--seconds S] [--warmup W] [--label L]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIPE 1024
#define BODY "bench-task:echo:message=" /* about the size of an OEE task */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "bs_client: %s\n", what);
  exit(2);
}

typedef struct conn {
  int fd;
  char in[1 << 16];
  size_t in_len, in_off;
  char out[1 << 16];
  size_t out_len;
  pthread_t thread;
  long cycles_counted;
  int64_t *lat;
  size_t nlat, cap;
} conn;

static int port = 11300, conns = 1, pipe_depth = 1;
static double seconds = 3.0, warmup = 0.5;
static const char *label = "beanstalkd";
static int64_t warm_end, end_ns;

static void flush_out(conn *c) {
  size_t off = 0;
  while (off < c->out_len) {
    ssize_t n = write(c->fd, c->out + off, c->out_len - off);
    if (n <= 0) die("write failed");
    off += (size_t)n;
  }
  c->out_len = 0;
}

static void put_out(conn *c, const char *s, size_t n) {
  if (c->out_len + n > sizeof(c->out)) flush_out(c);
  memcpy(c->out + c->out_len, s, n);
  c->out_len += n;
}

/* Reads one "\r\n"-terminated line into line (without the terminator). */
static void read_line(conn *c, char *line, size_t cap) {
  for (;;) {
    char *p = memchr(c->in + c->in_off, '\n', c->in_len - c->in_off);
    if (p) {
      size_t n = (size_t)(p - (c->in + c->in_off));
      size_t k = n > 0 && c->in[c->in_off + n - 1] == '\r' ? n - 1 : n;
      if (k >= cap) k = cap - 1;
      memcpy(line, c->in + c->in_off, k);
      line[k] = '\0';
      c->in_off += n + 1;
      return;
    }
    if (c->in_off > 0) {
      memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
      c->in_len -= c->in_off;
      c->in_off = 0;
    }
    if (c->in_len == sizeof(c->in)) die("line too long");
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
    if (n <= 0) die("connection closed by beanstalkd");
    c->in_len += (size_t)n;
  }
}

static void *run(void *arg) {
  conn *c = arg;
  char line[256], cmd[128];
  unsigned long long ids[MAX_PIPE];
  char put[128];
  int put_len = snprintf(put, sizeof(put), "put 1024 0 60 %zu\r\n%s\r\n", strlen(BODY), BODY);
  static const char reserve[] = "reserve-with-timeout 0\r\n";
  for (;;) {
    int64_t t0 = now_ns();
    if (t0 >= end_ns) break;
    for (int i = 0; i < pipe_depth; i++) put_out(c, put, (size_t)put_len);
    flush_out(c);
    for (int i = 0; i < pipe_depth; i++) {
      read_line(c, line, sizeof(line));
      if (strncmp(line, "INSERTED ", 9) != 0) die(line);
    }
    for (int i = 0; i < pipe_depth; i++) put_out(c, reserve, sizeof(reserve) - 1);
    flush_out(c);
    int got = 0;
    for (int i = 0; i < pipe_depth; i++) {
      read_line(c, line, sizeof(line));
      unsigned long long id;
      size_t bytes;
      if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) == 2) {
        read_line(c, line, sizeof(line)); /* the body */
        ids[got++] = id;
      } else if (strcmp(line, "TIMED_OUT") != 0) {
        die(line);
      }
    }
    for (int i = 0; i < got; i++) {
      int n = snprintf(cmd, sizeof(cmd), "delete %llu\r\n", ids[i]);
      put_out(c, cmd, (size_t)n);
    }
    flush_out(c);
    for (int i = 0; i < got; i++) {
      read_line(c, line, sizeof(line));
      if (strcmp(line, "DELETED") != 0) die(line);
    }
    int64_t t1 = now_ns();
    if (t1 >= warm_end && t1 <= end_ns) {
      c->cycles_counted += got;
      if (c->nlat < c->cap) c->lat[c->nlat++] = t1 - t0;
    }
  }
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port"))
      port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--conns"))
      conns = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pipeline"))
      pipe_depth = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup"))
      warmup = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--label"))
      label = argv[i + 1];
    else
      die("unknown option");
  }
  if (conns < 1 || conns > 64 || pipe_depth < 1 || pipe_depth > MAX_PIPE) die("bad option");
  conn *cs = calloc((size_t)conns, sizeof(*cs));
  if (cs == NULL) die("out of memory");
  for (int i = 0; i < conns; i++) {
    conn *c = &cs[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) die("cannot connect to beanstalkd");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->cap = 4000000;
    c->lat = calloc(c->cap, sizeof(*c->lat));
    if (c->lat == NULL) die("out of memory");
  }
  int64_t t0 = now_ns();
  warm_end = t0 + (int64_t)(warmup * 1e9);
  end_ns = warm_end + (int64_t)(seconds * 1e9);
  for (int i = 0; i < conns; i++) pthread_create(&cs[i].thread, NULL, run, &cs[i]);
  long cycles = 0;
  size_t nlat = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(cs[i].thread, NULL);
    cycles += cs[i].cycles_counted;
    nlat += cs[i].nlat;
  }
  int64_t *all = calloc(nlat + 1, sizeof(*all));
  size_t k = 0;
  for (int i = 0; i < conns; i++) {
    memcpy(all + k, cs[i].lat, cs[i].nlat * sizeof(*all));
    k += cs[i].nlat;
  }
  qsort(all, nlat, sizeof(*all), cmp_i64);
  double p50 = nlat ? (double)all[(nlat - 1) / 2] / 1000.0 : 0;
  double p99 = nlat ? (double)all[(size_t)((double)(nlat - 1) * 0.99)] / 1000.0 : 0;
  printf(
      "RESULT %s conns=%d pipeline=%d cycles=%ld seconds=%.3f rate=%.0f "
      "group_p50_us=%.1f group_p99_us=%.1f\n",
      label, conns, pipe_depth, cycles, seconds, (double)cycles / seconds, p50, p99);
  for (int i = 0; i < conns; i++) {
    close(cs[i].fd);
    free(cs[i].lat);
  }
  free(cs);
  free(all);
  return 0;
}
