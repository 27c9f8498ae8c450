/*
 * The paper's read microbenchmark as a C program (daxvm bench preload):
 * for each file of a list, open, get its bytes in by read() into one reused
 * buffer or by mmap (with the flags given: MAP_DAXVM with the preload
 * library), sum them in 8-byte words, munmap, close. The clock runs from the
 * open of the first file to the close of the last.
 *
 *   read-files read|mmap FLAGS LIST SIZE
 *
 * LIST holds one path per line, every file SIZE bytes (a multiple of 8).
 * Prints: seconds bytes files checksum (the uint64 word sum, 16 hex digits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
  fprintf(stderr, "read-files: %s %s: %s\n", what, path ? path : "", strerror(errno));
  exit(1);
}

static uint64_t sum64(const uint64_t *w, size_t n)
{
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++) s += w[i];
  return s;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: read-files read|mmap FLAGS LIST SIZE\n");
    return 2;
  }
  int use_mmap = strcmp(argv[1], "mmap") == 0;
  int flags = MAP_SHARED | (int)strtol(argv[2], NULL, 0);
  size_t size = (size_t)strtoull(argv[4], NULL, 10);
  FILE *list = fopen(argv[3], "r");
  if (!list) die("open", argv[3]);
  size_t n = 0, cap = 1024;
  char **paths = malloc(cap * sizeof *paths);
  char line[4096];
  while (fgets(line, sizeof line, list)) {
    line[strcspn(line, "\n")] = 0;
    if (!*line) continue;
    if (n == cap) paths = realloc(paths, (cap *= 2) * sizeof *paths);
    paths[n++] = strdup(line);
  }
  fclose(list);
  uint64_t *buf = use_mmap ? NULL : aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
  if (!use_mmap && !buf) die("malloc", NULL);
  uint64_t sum = 0, bytes = 0;
  double t0 = now();
  for (size_t i = 0; i < n; i++) {
    int fd = open(paths[i], O_RDONLY);
    if (fd < 0) die("open", paths[i]);
    if (use_mmap) {
      uint64_t *p = mmap(NULL, size, PROT_READ, flags, fd, 0);
      if (p == MAP_FAILED) die("mmap", paths[i]);
      sum += sum64(p, size / 8);
      if (munmap(p, size) != 0) die("munmap", paths[i]);
    } else {
      size_t got = 0;
      while (got < size) {
        ssize_t r = read(fd, (char *)buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read", paths[i]);
        got += (size_t)r;
      }
      sum += sum64(buf, size / 8);
    }
    bytes += size;
    close(fd);
  }
  double t1 = now();
  printf("%.9f %llu %zu %016llx\n", t1 - t0, (unsigned long long)bytes, n, (unsigned long long)sum);
  return 0;
}
