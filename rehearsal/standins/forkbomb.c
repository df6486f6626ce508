/* A bounded fork bomb for the pids-limit proof: forks sleeping children until fork fails or
 * MAX (argv[1], default 4096) is reached, prints how many it got, why it stopped (errno) and
 * its pids cgroup's own count and limit at that moment, then holds them for HOLD seconds
 * (argv[2], default 0) so the harness can watch the other containers while this one sits at
 * its limit, then kills them all and exits. It never loops unbounded, so a missing limit costs
 * MAX processes for a few seconds, not the machine. */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

/* The container's pids cgroup: cgroup v1 mounts the controller under pids/, v2 at the root. */
static void cgroup_value(const char *file, char *out, size_t size) {
  const char *dirs[] = {"/sys/fs/cgroup/pids/", "/sys/fs/cgroup/"};
  snprintf(out, size, "unreadable");
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s%s", dirs[i], file);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    if (fgets(out, (int)size, f))
      out[strcspn(out, "\n")] = 0;
    fclose(f);
    return;
  }
}

int main(int argc, char **argv) {
  long max = argc > 1 ? atol(argv[1]) : 4096;
  int hold = argc > 2 ? atoi(argv[2]) : 0;
  long made = 0;
  int why = 0;
  char current[32], limit[32];
  setpgid(0, 0);
  while (made < max) {
    pid_t pid = fork();
    if (pid < 0) {
      why = errno;
      break;
    }
    if (pid == 0) {
      sleep(30 + hold);
      _exit(0);
    }
    made++;
  }
  /* Read while every child is still alive: the count at the moment fork was refused. */
  cgroup_value("pids.current", current, sizeof current);
  cgroup_value("pids.max", limit, sizeof limit);
  printf("forked %ld of %ld: %s (errno %d); pids.current %s pids.max %s\n", made, max,
         why ? strerror(why) : "no limit hit", why, current, limit);
  fflush(stdout);
  if (hold > 0)
    sleep(hold);
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
  while (wait(NULL) > 0) {
  }
  printf("released after %d s\n", hold);
  return why ? 0 : 3;
}
