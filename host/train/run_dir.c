/* Run directories: layout, refusal to overwrite, checkpoint snapshots and their rotation. */
#include "train/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/paths.h"
#include "runtime/file_io.h"

/* The files a run writes, relative to DIR: what --force removes. */
static const char *const run_files[] = {"recipe.json", "metrics.jsonl", "eval.json",
                                        "checkpoints/latest.h5", "checkpoints/best.h5",
                                        "checkpoints/best.json", NULL};

int kd_run_dir_path(char *buf, size_t cap, const char *dir, const char *name, kd_error *err) {
  if (snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap)
    return kd_fail(err, "--run-dir %s: path too long", dir);
  return 0;
}

/* mkdir -p: the run directory's parents are made too (runs/kd-t2 makes runs/); *made_parents
 * (may be NULL) counts the parents this call created, the innermost ones. */
static int make_dir(const char *path, int *made_parents, kd_error *err) {
  char parent[4200];
  snprintf(parent, sizeof parent, "%s", path);
  if (made_parents) *made_parents = 0;
  for (char *p = parent + 1; *p; p++) {
    if (*p != '/' || p[-1] == '/' || p[1] == '\0') continue;
    *p = '\0';
    if (mkdir(parent, 0777) == 0) {
      if (made_parents) (*made_parents)++;
    } else if (errno != EEXIST) {
      return kd_fail(err, "--run-dir: cannot create %s: %s", parent, strerror(errno));
    }
    *p = '/';
  }
  if (mkdir(path, 0777) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return kd_fail(err, "--run-dir: %s exists and is not a directory", path);
  }
  return kd_fail(err, "--run-dir: cannot create %s: %s", path, strerror(errno));
}

static long long snapshot_epoch(const char *name);

/* 1 when DIR/checkpoints holds something other than latest/best checkpoints, best.json,
 * epoch-NNNN.h5 snapshots and their lock and temporary files. */
static int checkpoints_hold_other_files(const char *ckdir) {
  DIR *d = opendir(ckdir);
  if (!d) return 0;
  int other = 0;
  for (struct dirent *e; !other && (e = readdir(d));) {
    const char *n = e->d_name;
    other = strcmp(n, ".") && strcmp(n, "..") && strncmp(n, "latest.h5", 9) &&
            strncmp(n, "best.h5", 7) && strncmp(n, "best.json", 9) && snapshot_epoch(n) < 0 &&
            strncmp(n, "epoch-", 6);
  }
  closedir(d);
  return other;
}

/* 1 when path exists (any kind of file). */
static int exists(const char *dir, const char *name) {
  char path[4300];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0;
}

/* 1 when dir holds entries other than the files a run writes (and checkpoints/), 0 when not,
 * -1 when it cannot be read. */
static int holds_other_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int other = 0;
  for (struct dirent *e; !other && (e = readdir(d));) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "checkpoints")) continue;
    int ours = 0; /* a run file, or the NAME.tmp.PID a killed write of one left */
    for (const char *const *f = run_files; *f; f++) ours |= !strncmp(*f, n, strlen(*f));
    other = !ours;
  }
  closedir(d);
  return other;
}

int kd_run_dir_open(const char *dir, const char *resume_path, int force, int *fresh,
                    int *created, kd_error *err) {
  char ckdir[4200], latest[4200];
  *fresh = *created = 0;
  if (!*dir) return kd_fail(err, "--run-dir needs a directory name");
  if (kd_run_dir_path(ckdir, sizeof ckdir, dir, "checkpoints", err) ||
      kd_run_dir_path(latest, sizeof latest, dir, "checkpoints/latest.h5", err))
    return -1;
  struct stat st;
  if (stat(dir, &st) != 0) {
    *created = *fresh = 1;
  } else {
    if (!S_ISDIR(st.st_mode)) return kd_fail(err, "--run-dir %s exists and is not a directory", dir);
    int other = holds_other_files(dir);
    if (other < 0) return kd_fail(err, "--run-dir %s: cannot read it: %s", dir, strerror(errno));
    if (other)
      return kd_fail(err, "--run-dir %s is not empty and holds no kdcl run: choose a new or "
                     "empty directory", dir);
    if (exists(dir, "checkpoints/latest.h5")) {
      int own = resume_path && kd_same_file(resume_path, latest);
      if (!own && !force)
        return resume_path
                   ? kd_fail(err, "--run-dir %s already holds a run, and --resume %s continues "
                             "another: choose a new directory (or --force to replace %s's run)",
                             dir, resume_path, dir)
                   : kd_fail(err, "--run-dir %s already holds a run: continue it with --resume "
                             "%s, replace it with --force, or choose another directory", dir, dir);
      *fresh = !own;
    } else {
      *fresh = 1; /* empty, or a run that stopped before its first checkpoint: start over */
    }
    if (checkpoints_hold_other_files(ckdir))
      return kd_fail(err, "--run-dir %s: %s holds files kdcl did not write", dir, ckdir);
  }
  int made_parents = 0;
  if (make_dir(dir, &made_parents, err)) return -1;
  *created |= made_parents << 2;
  if (stat(ckdir, &st) != 0) *created |= 2;
  return make_dir(ckdir, NULL, err);
}

void kd_run_dir_remove_if_empty(const char *dir, int created) {
  char path[4200];
  kd_error ignored;
  if ((created & 2) && kd_run_dir_path(path, sizeof path, dir, "checkpoints", &ignored) == 0)
    rmdir(path); /* fails, as it should, once anything is in it */
  if (!(created & 1)) return;
  rmdir(dir);
  /* then the parents made for it, innermost first, while they are empty */
  snprintf(path, sizeof path, "%s", dir);
  for (int up = created >> 2; up > 0; up--) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return;
    *slash = '\0';
    if (rmdir(path) != 0) return;
  }
}

/* Parses "epoch-NNNN.h5"; returns the epoch or -1. */
static long long snapshot_epoch(const char *name) {
  long long e;
  int used = 0;
  if (sscanf(name, "epoch-%lld.h5%n", &e, &used) == 1 && used == (int)strlen(name) && e >= 0)
    return e;
  return -1;
}

/* Removes the epoch snapshots numbered at most `upto`. */
static int remove_snapshots(const char *dir, long long upto, kd_error *err) {
  char ckdir[4200], path[4500];
  if (kd_run_dir_path(ckdir, sizeof ckdir, dir, "checkpoints", err)) return -1;
  DIR *d = opendir(ckdir);
  if (!d) return errno == ENOENT ? 0 : kd_fail(err, "--run-dir: cannot read %s: %s", ckdir,
                                                strerror(errno));
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    long long epoch = snapshot_epoch(e->d_name);
    if (epoch < 0 || epoch > upto) continue;
    snprintf(path, sizeof path, "%s/%s", ckdir, e->d_name);
    if (unlink(path) != 0 && errno != ENOENT)
      rc = kd_fail(err, "--run-dir: cannot remove %s: %s", path, strerror(errno));
  }
  closedir(d);
  return rc;
}

int kd_run_dir_clear(const char *dir, kd_error *err) {
  char path[4200];
  for (const char *const *f = run_files; *f; f++) {
    if (kd_run_dir_path(path, sizeof path, dir, *f, err)) return -1;
    if (unlink(path) != 0 && errno != ENOENT)
      return kd_fail(err, "--force: cannot remove %s: %s", path, strerror(errno));
  }
  return remove_snapshots(dir, (long long)INT64_MAX, err);
}

int kd_run_dir_write_json(const char *dir, const char *name, const cJSON *json, kd_error *err) {
  char path[4200];
  if (kd_run_dir_path(path, sizeof path, dir, name, err)) return -1;
  char *text = cJSON_Print(json);
  if (!text) return kd_fail(err, "out of host memory writing %s", path);
  size_t len = strlen(text);
  text[len] = '\n'; /* cJSON_Print's buffer ends in the '\0' this replaces */
  int rc = kd_write_file_atomic(path, text, len + 1);
  free(text);
  return rc ? kd_fail(err, "cannot write %s: %s", path, strerror(errno)) : 0;
}

/* Makes `link_name` (in DIR/checkpoints) another name of latest.h5, replacing any file of
 * that name atomically: link to a temporary name, then rename over. */
static int link_latest(const char *dir, const char *link_name, kd_error *err) {
  char latest[4200], target[4200], tmp[4300];
  if (kd_run_dir_path(latest, sizeof latest, dir, "checkpoints/latest.h5", err) ||
      kd_run_dir_path(target, sizeof target, dir, link_name, err))
    return -1;
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", target, (long)getpid());
  unlink(tmp);
  if (link(latest, tmp) != 0)
    return kd_fail(err, "--run-dir: cannot link %s as %s: %s (a file system without hard "
                   "links?)", latest, target, strerror(errno));
  if (rename(tmp, target) != 0) {
    int e = errno;
    unlink(tmp);
    return kd_fail(err, "--run-dir: cannot rename %s to %s: %s", tmp, target, strerror(e));
  }
  return 0;
}

int kd_run_dir_epoch_done(const char *dir, int64_t epoch, int64_t keep, kd_error *err) {
  if (keep <= 0) return 0;
  char name[64];
  snprintf(name, sizeof name, "checkpoints/epoch-%04lld.h5", (long long)epoch);
  if (link_latest(dir, name, err)) return -1;
  return remove_snapshots(dir, (long long)(epoch - keep), err);
}

double kd_run_dir_best_accuracy(const char *dir) {
  char path[4200];
  kd_error ignored;
  if (kd_run_dir_path(path, sizeof path, dir, "checkpoints/best.json", &ignored)) return -1;
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char text[4096];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = '\0';
  cJSON *j = cJSON_Parse(text);
  const cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "val_accuracy");
  double best = cJSON_IsNumber(acc) ? acc->valuedouble : -1;
  cJSON_Delete(j);
  return best;
}

int kd_run_dir_mark_best(const char *dir, int64_t epoch, int64_t step, double val_accuracy,
                         kd_error *err) {
  if (link_latest(dir, "checkpoints/best.h5", err)) return -1;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "epoch", (double)epoch);
  cJSON_AddNumberToObject(j, "step", (double)step);
  cJSON_AddNumberToObject(j, "val_accuracy", val_accuracy);
  int rc = kd_run_dir_write_json(dir, "checkpoints/best.json", j, err);
  cJSON_Delete(j);
  return rc;
}
