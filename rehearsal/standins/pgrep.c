/* pgrep for the stand-in images: Debian's busybox-static is built without pgrep (Debian
 * leaves it to procps), yet the rendered healthchecks and the operators' runbook call
 * `pgrep [-f] PATTERN`. Same matching as procps: an extended regex against the process name
 * (comm), or with -f against the whole command line; prints matching pids, exit 0 if any. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>

int main(int argc, char **argv) {
  int full = 0, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-f") == 0) full = 1;
    else {
      fprintf(stderr, "pgrep stand-in: only -f is supported, got %s\n", argv[i]);
      return 2;
    }
  }
  if (i != argc - 1) {
    fprintf(stderr, "usage: pgrep [-f] PATTERN\n");
    return 2;
  }
  regex_t re;
  if (regcomp(&re, argv[i], REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "pgrep: invalid pattern %s\n", argv[i]);
    return 2;
  }
  DIR *proc = opendir("/proc");
  if (!proc) return 3;
  int found = 0;
  pid_t self = getpid();
  for (struct dirent *e; (e = readdir(proc));) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid <= 0 || pid == self) continue;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, full ? "cmdline" : "comm");
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    for (ssize_t k = 0; k < n - 1; k++)
      if (buf[k] == 0) buf[k] = ' ';
    if (!full && buf[n - 1] == '\n') buf[n - 1] = 0;
    if (regexec(&re, buf, 0, NULL, 0) == 0) {
      printf("%d\n", pid);
      found = 1;
    }
  }
  closedir(proc);
  return found ? 0 : 1;
}
