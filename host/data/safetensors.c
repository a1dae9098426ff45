/* safetensors writer: the JSON header is built with cJSON (integers as raw text so u64 offsets
 * stay exact), the tensor bytes are streamed little-endian through a small buffer, and the
 * file goes through the same NAME.tmp -> fsync -> rename protocol as kdcl's HDF5 outputs. */
#include "data/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* Element count and byte size of a tensor, checked for overflow. */
static int tensor_bytes(const char *path, const kd_named_tensor *t, uint64_t *bytes,
                        kd_error *err) {
  if (t->ndim < 0 || t->ndim > 4)
    return kd_fail(err, "%s: tensor %s has rank %d (0 to 4 allowed)", path, t->name, t->ndim);
  uint64_t n = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0 || (t->shape[i] > 0 && n > (UINT64_MAX / 8) / (uint64_t)t->shape[i]))
      return kd_fail(err, "%s: tensor %s has a bad shape", path, t->name);
    n *= (uint64_t)t->shape[i];
  }
  if (n > 0 && !t->data && !t->idata)
    return kd_fail(err, "%s: tensor %s has no data", path, t->name);
  *bytes = n * (t->idata ? 8u : 4u);
  return 0;
}

static cJSON *raw_u64(uint64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%" PRIu64, v);
  return cJSON_CreateRaw(s);
}

/* The header JSON (unpadded, malloc'd) for the tensors and metadata; NULL after a failure. */
static char *build_header(const char *path, const kd_named_tensor *tensors, int n,
                          const kd_safetensors_meta *meta, int n_meta, kd_error *err) {
  cJSON *root = cJSON_CreateObject();
  if (!root) goto oom;
  if (n_meta > 0) {
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    if (!m) goto oom;
    for (int i = 0; i < n_meta; i++) {
      if (!meta[i].key || !meta[i].value) {
        kd_fail(err, "%s: metadata entry %d has no key or value", path, i);
        goto fail;
      }
      if (cJSON_GetObjectItemCaseSensitive(m, meta[i].key)) {
        kd_fail(err, "%s: metadata key '%s' given twice", path, meta[i].key);
        goto fail;
      }
      if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value)) goto oom;
    }
  }
  uint64_t offset = 0;
  for (int i = 0; i < n; i++) {
    const kd_named_tensor *t = &tensors[i];
    size_t len = strnlen(t->name, sizeof t->name);
    if (len == 0 || len >= sizeof t->name) {
      kd_fail(err, "%s: tensor %d has an empty or unterminated name", path, i);
      goto fail;
    }
    if (!strcmp(t->name, "__metadata__") || cJSON_GetObjectItemCaseSensitive(root, t->name)) {
      kd_fail(err, "%s: tensor name '%s' is reserved or given twice", path, t->name);
      goto fail;
    }
    uint64_t bytes;
    if (tensor_bytes(path, t, &bytes, err)) goto fail;
    if (bytes > UINT64_MAX - offset) {
      kd_fail(err, "%s: the tensors add up to more than 2^64 bytes", path);
      goto fail;
    }
    cJSON *o = cJSON_AddObjectToObject(root, t->name);
    cJSON *shape = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
    cJSON *offs = shape ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
    if (!offs || !cJSON_AddStringToObject(o, "dtype", t->idata ? "I64" : "F32")) goto oom;
    for (int d = 0; d < t->ndim; d++) {
      cJSON *v = raw_u64((uint64_t)t->shape[d]);
      if (!v) goto oom;
      cJSON_AddItemToArray(shape, v);
    }
    cJSON *b = raw_u64(offset), *e = raw_u64(offset + bytes);
    if (!b || !e) {
      cJSON_Delete(b);
      cJSON_Delete(e);
      goto oom;
    }
    cJSON_AddItemToArray(offs, b);
    cJSON_AddItemToArray(offs, e);
    offset += bytes;
  }
  char *text = cJSON_PrintUnformatted(root);
  if (!text) goto oom;
  cJSON_Delete(root);
  return text;
oom:
  kd_fail(err, "%s: out of memory building the header", path);
fail:
  cJSON_Delete(root);
  return NULL;
}

static int write_all(int fd, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Streams one tensor's elements as little-endian bytes. */
static int write_tensor(int fd, const kd_named_tensor *t, uint64_t bytes) {
  unsigned char buf[1 << 16];
  size_t width = t->idata ? 8 : 4, count = (size_t)(bytes / width), fill = 0;
  for (size_t i = 0; i < count; i++) {
    uint64_t bits;
    if (t->idata) {
      bits = (uint64_t)t->idata[i];
    } else {
      uint32_t b32;
      memcpy(&b32, &t->data[i], 4);
      bits = b32;
    }
    for (size_t k = 0; k < width; k++) buf[fill++] = (unsigned char)(bits >> (8 * k));
    if (fill + width > sizeof buf) {
      if (write_all(fd, buf, fill)) return -1;
      fill = 0;
    }
  }
  return fill ? write_all(fd, buf, fill) : 0;
}

static void dir_of(const char *path, char *dir, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, cap, ".");
  else if (slash == path)
    snprintf(dir, cap, "/");
  else
    snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

int kd_safetensors_write(const char *path, const kd_named_tensor *tensors, int n,
                         const kd_safetensors_meta *meta, int n_meta, kd_error *err) {
  if (n < 0 || n_meta < 0) return kd_fail(err, "%s: negative tensor or metadata count", path);
  char *header = build_header(path, tensors, n, meta, n_meta, err);
  if (!header) return -1;
  size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
  char *tmp = malloc(strlen(path) + 5);
  char *block = malloc(8 + padded);
  if (!tmp || !block) {
    free(header);
    free(tmp);
    free(block);
    return kd_fail(err, "%s: out of memory", path);
  }
  sprintf(tmp, "%s.tmp", path);
  for (int k = 0; k < 8; k++) block[k] = (char)((uint64_t)padded >> (8 * k));
  memcpy(block + 8, header, hlen);
  memset(block + 8 + hlen, ' ', padded - hlen);
  free(header);

  int rc = -1, created = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    char dir[4096];
    struct stat st;
    dir_of(path, dir, sizeof dir);
    if (e == ENOENT && stat(dir, &st) != 0)
      kd_fail(err, "%s: cannot create: directory %s does not exist", path, dir);
    else
      kd_fail(err, "%s: cannot create %s: %s", path, tmp, strerror(e));
    goto done;
  }
  created = 1;
  if (write_all(fd, block, 8 + padded)) {
    kd_fail(err, "%s: writing the header to %s: %s", path, tmp, strerror(errno));
    goto done;
  }
  for (int i = 0; i < n; i++) {
    uint64_t bytes = 0;
    if (tensor_bytes(path, &tensors[i], &bytes, err)) goto done;
    if (write_tensor(fd, &tensors[i], bytes)) {
      kd_fail(err, "%s: writing tensor %s to %s: %s", path, tensors[i].name, tmp,
              strerror(errno));
      goto done;
    }
  }
  if (fsync(fd) != 0) {
    kd_fail(err, "%s: syncing %s: %s", path, tmp, strerror(errno));
    goto done;
  }
  int closed = close(fd);
  fd = -1;
  if (closed != 0) {
    kd_fail(err, "%s: closing %s: %s", path, tmp, strerror(errno));
    goto done;
  }
  if (rename(tmp, path) != 0) {
    kd_fail(err, "%s: renaming %s over it: %s", path, tmp, strerror(errno));
    goto done;
  }
  created = 0;
  /* Make the rename durable; best effort, as some file systems refuse fsync on a directory. */
  char dir[4096];
  dir_of(path, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  rc = 0;
done:
  if (fd >= 0) close(fd);
  if (created) unlink(tmp);
  free(tmp);
  free(block);
  return rc;
}
