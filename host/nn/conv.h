/* 2-D convolution over NCHW tensors (PyTorch's nn.Conv2d with zero padding, groups = 1,
 * dilation = 1) as a forward/backward launcher pair around kd_gemm. Every function enqueues
 * only (no host sync) and returns 0, or -1 with a message in err.
 *
 * Formulation (host/nn/conv.c, kernels/conv.cl), with K = C*KH*KW, P = OH*OW, over the n
 * images in chunks of g (g fixed by the shape: the chunk's column matrix is about 2^20 floats,
 * so im2col's output is still in cache when the GEMM reads it; measured 1.2-1.6x faster than
 * the whole batch at once on CPUs). Per chunk of m <= g images, N = m*P:
 *   forward:  col[K, N] = im2col(x)                        (one launch)
 *             Y[O, N]   = w[O, K] * col                    (one GEMM, NN)
 *             y = Y + b, reordered to NCHW                 (one launch)
 *   backward: D[O, N] = dy reordered; col = im2col(x)      (two launches)
 *             dw[O, K] (+)= D * col^T                      (one GEMM, NT; chunks in order)
 *             dcol[K, N] = w^T * D; dx = col2im(dcol)      (GEMM TN + one launch, if dx)
 *   and once per call: db[O] = sums of dy                  (one launch, if db)
 * col/dcol and Y/D live in the caller's workspace (kd_conv2d_workspace_floats), which may be
 * shared between layers: backward recomputes col rather than keeping forward's. col2im is a
 * gather (each input pixel sums the columns it fed, in a fixed order) and every sum runs in a
 * fixed order, so results are the same bits on every run for a given device and GEMM back
 * end. */
#ifndef KD_CONV_H
#define KD_CONV_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* Geometry of one conv2d layer over a batch; PyTorch semantics (zero padding, floor division):
 *   OH = (H + 2*pad - KH) / stride + 1, OW likewise.
 * B: images per batch (the most a call may pass as n), C: input channels, H x W: input plane,
 * O: output channels, KH x KW: kernel, stride and pad in pixels (the same along both axes). */
typedef struct kd_conv2d_shape {
  size_t B, C, H, W, O, KH, KW, stride, pad, OH, OW;
} kd_conv2d_shape;

/* Fills s (OH and OW computed) and validates: B, C, H, W, O, KH, KW, stride >= 1 (pad >= 0);
 * the kernel no larger than the padded input ("kernel 5x5 is larger than the padded input
 * 3x3"); every tensor (x, y, w, the workspace) and padded plane below 2^31 elements, products
 * computed without overflow. -1 with a message naming the shape otherwise. */
int kd_conv2d_shape_init(kd_conv2d_shape *s, size_t B, size_t C, size_t H, size_t W, size_t O,
                         size_t KH, size_t KW, size_t stride, size_t pad, kd_error *err);

/* Floats of scratch forward and backward need, for any n <= s->B:
 *   round_up(C*KH*KW * g*OH*OW, 16) + O * g*OH*OW,   g = images per chunk (1 <= g <= B)
 * (one chunk's column matrix, then its GEMM output / reordered dy). Depends on s only, so one
 * reservation in the workspace arena serves every call and every layer in turn; below 2^31. */
size_t kd_conv2d_workspace_floats(const kd_conv2d_shape *s);

/* y[n,O,OH,OW] = conv(x[n,C,H,W], w[O,C,KH,KW]) + b[O] (b.buf NULL: no bias), for n images,
 * 1 <= n <= s->B. workspace: kd_conv2d_workspace_floats(s) floats, overwritten. y must not
 * overlap x, w, b or the workspace. Three launches per chunk (im2col, GEMM, reorder + bias). */
int kd_conv2d_forward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref y, kd_ref x,
                      kd_ref w, kd_ref b, kd_ref workspace, kd_error *err);

/* Gradients of kd_conv2d_forward given dy[n,O,OH,OW] and the forward input x[n,C,H,W]:
 *   dx[n,C,H,W]   (dx.buf NULL: skipped, e.g. for the first layer; then w is not read)
 *   dw[O,C,KH,KW]
 *   db[O]         (db.buf NULL: none)
 * Each overwritten, not accumulated; no atomics, so deterministic. workspace as for forward
 * (its contents from forward are not needed). Outputs must not overlap inputs or the
 * workspace. Per chunk three launches (two GEMMs among them), plus two for dx; one more for
 * db. */
int kd_conv2d_backward(kd_device *dev, const kd_conv2d_shape *s, size_t n, kd_ref dx, kd_ref dw,
                       kd_ref db, kd_ref dy, kd_ref x, kd_ref w, kd_ref workspace,
                       kd_error *err);

#endif
