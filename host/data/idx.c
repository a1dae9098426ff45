/* IDX reader over zlib's gzip stream. */
#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int kd_idx_read(const char *path, int want_ndim, kd_idx *out, kd_error *err) {
  memset(out, 0, sizeof *out);
  gzFile f = gzopen(path, "rb");
  if (!f) return kd_fail(err, "%s: cannot open (%s)", path, strerror(errno ? errno : ENOENT));
  unsigned char magic[4];
  int rc = -1;
  if (gzread(f, magic, 4) != 4) {
    kd_fail(err, "%s: too short for an IDX header (truncated or not gzip?)", path);
    goto done;
  }
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != want_ndim) {
    kd_fail(err,
            "%s: bad IDX magic number %02x%02x%02x%02x (expected 000008%02x: unsigned bytes, "
            "%d dimensions)",
            path, magic[0], magic[1], magic[2], magic[3], want_ndim, want_ndim);
    goto done;
  }
  int64_t total = 1;
  for (int d = 0; d < want_ndim; d++) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) {
      kd_fail(err, "%s: truncated IDX header", path);
      goto done;
    }
    out->dims[d] = ((int64_t)b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    if (out->dims[d] <= 0 || total > ((int64_t)1 << 31) / out->dims[d]) {
      kd_fail(err, "%s: IDX dimension %d (%lld) is zero or too large", path, d,
              (long long)out->dims[d]);
      goto done;
    }
    total *= out->dims[d];
  }
  out->ndim = want_ndim;
  out->data = malloc((size_t)total);
  if (!out->data) {
    kd_fail(err, "%s: out of host memory for %lld bytes", path, (long long)total);
    goto done;
  }
  int64_t got = 0;
  while (got < total) {
    int chunk = (int)(total - got > (1 << 30) ? (1 << 30) : total - got);
    int n = gzread(f, out->data + got, (unsigned)chunk);
    if (n <= 0) break;
    got += n;
  }
  if (got != total) {
    int zerr;
    const char *why = gzerror(f, &zerr);
    kd_fail(err, "%s: truncated or corrupt: %lld of %lld data bytes%s%s", path, (long long)got,
            (long long)total, zerr < 0 ? ": " : "", zerr < 0 ? why : "");
    goto done;
  }
  unsigned char extra;
  if (gzread(f, &extra, 1) == 1) {
    kd_fail(err, "%s: more data than the IDX header declares", path);
    goto done;
  }
  rc = 0;
done:
  gzclose(f);
  if (rc) kd_idx_free(out);
  return rc;
}

void kd_idx_free(kd_idx *idx) {
  free(idx->data);
  memset(idx, 0, sizeof *idx);
}
