/* Stand-in for jamjam's echo-server:
 *   echo-server --port P --host H --delay MS --signaling-url ws://NAME:PORT --public-addr A
 * Echoes every UDP datagram on H:P back to its sender after MS milliseconds (as the real voice
 * echo test does), and keeps a WebSocket handshake with the signaling URL going, logging
 * "reached <url>" once it got 101, so the rehearsal can prove the bridge network and alias. */
#include "common.h"
#include <signal.h>
#include <poll.h>
#include <sys/time.h>
#include <time.h>

static int reach_signaling(const char *url) {
  char host[256], port[16] = "80";
  if (sscanf(url, "ws://%255[^:/]:%15[0-9]", host, port) < 1) return -1;
  int fd = open_socket(host, port, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  /* The handshake's key: 16 random bytes in base64, made per connection as clients do. */
  char b64[64];
  for (int i = 0; i < 26; i++) b64[i] = (char)('A' + i), b64[26 + i] = (char)('a' + i);
  for (int i = 0; i < 10; i++) b64[52 + i] = (char)('0' + i);
  b64[62] = '+';
  b64[63] = '/';
  unsigned char raw[18] = {0};
  char key[25];
  for (int i = 0; i < 16; i++) raw[i] = (unsigned char)(rand() & 0xff);
  for (int i = 0, o = 0; i < 18; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    for (int k = 0; k < 4 && o < 24; k++) key[o++] = b64[(v >> (18 - 6 * k)) & 63];
  }
  key[22] = key[23] = '=';
  key[24] = 0;
  char req[512];
  snprintf(req, sizeof req,
           "GET / HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
           host, port, key);
  char buf[1024];
  int ok = write(fd, req, strlen(req)) > 0 && read_head(fd, buf, sizeof buf) > 0 &&
           strstr(buf, " 101 ") != NULL;
  close(fd);
  return ok ? 0 : -1;
}

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  const char *port = opt(argc, argv, "--port", "5000");
  const char *host = opt(argc, argv, "--host", "0.0.0.0");
  long delay = atol(opt(argc, argv, "--delay", getenv("ECHO_DELAY_MS") ? getenv("ECHO_DELAY_MS") : "0"));
  const char *url = opt(argc, argv, "--signaling-url", NULL);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  int fd = open_socket(host, port, SOCK_DGRAM, 1);
  if (fd < 0) {
    say("echo-server: cannot bind udp %s:%s: %s", host, port, strerror(errno));
    return 1;
  }
  say("echo-server: udp %s:%s, delay %ld ms, public %s", host, port, delay,
      opt(argc, argv, "--public-addr", "unset"));
  int reached = url == NULL;
  time_t next_try = 0;
  /* Replies wait in a queue until they are due, so one client's delay never holds up
   * another's (the real server answers each client on its own schedule). */
  struct reply {
    struct timespec due;
    struct sockaddr_storage to;
    socklen_t len;
    ssize_t n;
    char buf[1500];
  };
  static struct reply queue[256];
  int used = 0;
  for (;;) {
    if (!reached && time(NULL) >= next_try) {
      if (reach_signaling(url) == 0) {
        say("echo-server: reached %s", url);
        reached = 1;
      } else {
        say("echo-server: cannot reach %s yet", url);
        next_try = time(NULL) + 1;
      }
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int wait_ms = 500;
    for (int i = 0; i < used;) {
      long ms = (queue[i].due.tv_sec - now.tv_sec) * 1000 + (queue[i].due.tv_nsec - now.tv_nsec) / 1000000;
      if (ms <= 0) {
        sendto(fd, queue[i].buf, (size_t)queue[i].n, 0, (struct sockaddr *)&queue[i].to, queue[i].len);
        queue[i] = queue[--used];
        continue;
      }
      if (ms < wait_ms) wait_ms = (int)ms;
      i++;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0) continue;
    struct reply *r = used < 256 ? &queue[used] : NULL;
    char drop[1500];
    struct sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, r ? r->buf : drop, 1500, 0, (struct sockaddr *)&from, &len);
    if (n < 0 || !r) continue;
    clock_gettime(CLOCK_MONOTONIC, &r->due);
    long d = delay > 10000 ? 10000 : delay;
    r->due.tv_sec += d / 1000;
    r->due.tv_nsec += (d % 1000) * 1000000;
    if (r->due.tv_nsec >= 1000000000) {
      r->due.tv_sec++;
      r->due.tv_nsec -= 1000000000;
    }
    r->to = from;
    r->len = len;
    r->n = n;
    used++;
  }
}
