// The floor: the least work any CONNECT proxy must do on this kernel. One thread, epoll, no
// checks, no logs: read the CONNECT head, connect to the fixed origin, answer 200, then
// splice(2) both ways through a pipe per direction. It answers "what does the kernel alone
// charge a proxy per connection and per GB here?", the lower bound for moat's figures.
// Build: cc -O2 -o splice_floor splice_floor.c
// Run:   splice_floor LISTEN_PORT ORIGIN_PORT [PIPE_BYTES]   (127.0.0.1 only)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kDead = -1, kHead, kConnecting, kTunnel };

struct conn;
struct side {  // one socket of a tunnel, and the pipe that carries what it reads
  struct conn *c;
  int fd;
  int pipe_r, pipe_w;
  size_t buffered;
  int eof;
};
struct conn {
  int state;
  struct side client, origin;
  char head[4096];
  size_t head_len;
  int closed_dirs;
};

static int ep;
static struct sockaddr_in origin_addr;
static size_t pipe_bytes = 65536;

static void watch(struct side *s, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = s};
  epoll_ctl(ep, op, s->fd, &ev);
}

// Closed now, freed after the current epoll batch (later events may still point at it).
static struct conn *graveyard[256];
static int buried;

static void finish(struct conn *c) {
  c->state = kDead;
  graveyard[buried++] = c;
  close(c->client.fd);
  if (c->origin.fd >= 0) close(c->origin.fd);
  if (c->client.pipe_r >= 0) { close(c->client.pipe_r); close(c->client.pipe_w); }
  if (c->origin.pipe_r >= 0) { close(c->origin.pipe_r); close(c->origin.pipe_w); }
}

// Moves what `from` has into its pipe and from the pipe to the peer. Returns -1 when the
// connection is done.
static int pump(struct side *from, struct side *to) {
  for (;;) {
    if (from->buffered == 0 && !from->eof) {
      ssize_t n = splice(from->fd, NULL, from->pipe_w, NULL, pipe_bytes,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) {
        from->eof = 1;
        shutdown(to->fd, SHUT_WR);
        if (++from->c->closed_dirs == 2) return -1;
        return 0;
      }
      if (n < 0) return errno == EAGAIN ? 0 : -1;
      from->buffered = (size_t)n;
    }
    while (from->buffered > 0) {
      ssize_t m = splice(from->pipe_r, NULL, to->fd, NULL, from->buffered,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) return errno == EAGAIN ? 0 : -1;  // EPOLLOUT on `to` resumes us
      from->buffered -= (size_t)m;
    }
    if (from->eof) return 0;
  }
}

static int make_pipe(struct side *s) {
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
  if (pipe_bytes != 65536) fcntl(p[1], F_SETPIPE_SZ, (int)pipe_bytes);
  s->pipe_r = p[0];
  s->pipe_w = p[1];
  return 0;
}

static void on_event(struct side *s, unsigned events) {
  struct conn *c = s->c;
  if (c->state == kDead) return;
  if (c->state == kHead) {
    ssize_t n = read(c->client.fd, c->head + c->head_len, sizeof c->head - c->head_len - 1);
    if (n <= 0) { if (n < 0 && errno == EAGAIN) return; finish(c); return; }
    c->head_len += (size_t)n;
    c->head[c->head_len] = 0;
    if (!strstr(c->head, "\r\n\r\n")) return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->origin.fd = fd;
    if (connect(fd, (struct sockaddr *)&origin_addr, sizeof origin_addr) != 0 &&
        errno != EINPROGRESS) { finish(c); return; }
    c->state = kConnecting;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->client.fd, NULL);
    watch(&c->origin, EPOLL_CTL_ADD, EPOLLOUT);
    return;
  }
  if (c->state == kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->origin.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { finish(c); return; }
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (write(c->client.fd, ok, sizeof ok - 1) != sizeof ok - 1) { finish(c); return; }
    if (make_pipe(&c->client) || make_pipe(&c->origin)) { finish(c); return; }
    c->state = kTunnel;
    int one = 1;
    setsockopt(c->origin.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    watch(&c->origin, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    watch(&c->client, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    return;
  }
  // Tunnel, edge-triggered: readable -> pump from this side; writable -> drain the peer's pipe.
  struct side *peer = s == &c->client ? &c->origin : &c->client;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && pump(s, peer) < 0) { finish(c); return; }
  if ((events & EPOLLOUT) && pump(peer, s) < 0) { finish(c); return; }
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s LISTEN_PORT ORIGIN_PORT [PIPE_BYTES]\n", argv[0]); return 2; }
  signal(SIGPIPE, SIG_IGN);  // a peer that closed first must not kill the proxy
  if (argc > 3) pipe_bytes = strtoul(argv[3], NULL, 10);
  origin_addr.sin_family = AF_INET;
  origin_addr.sin_port = htons((unsigned short)atoi(argv[2]));
  inet_pton(AF_INET, "127.0.0.1", &origin_addr.sin_addr);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
  if (bind(lfd, (struct sockaddr *)&la, sizeof la) || listen(lfd, 4096)) { perror("listen"); return 1; }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->client = (struct side){c, fd, -1, -1, 0, 0};
          c->origin = (struct side){c, -1, -1, -1, 0, 0};
          watch(&c->client, EPOLL_CTL_ADD, EPOLLIN);
        }
        continue;
      }
      on_event(evs[i].data.ptr, evs[i].events);
    }
    while (buried > 0) free(graveyard[--buried]);
  }
}
