/* MLP layers as forward/backward launcher pairs: dense (GEMM + bias), activations, dropout,
 * and input normalisation. Every function enqueues only (no host sync) and returns 0, or -1
 * with a message in err. Tensors are kd_ref places in arena buffers; offsets and sizes are in
 * elements (floats unless said otherwise), row-major, and must fit the kernels' 32-bit
 * indices (offset + extent < 2^32 elements), else -1. */
#ifndef KD_LAYERS_H
#define KD_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/arena.h"
#include "runtime/device.h"

typedef enum kd_activation { KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH, KD_ACT_SIGMOID } kd_activation;

/* "relu", "gelu", "tanh" or "sigmoid" (exact, lower case) into *out; -1 otherwise (no message:
 * the caller names the spec and the layer). */
int kd_activation_parse(const char *name, kd_activation *out);
/* The spec name of an activation ("relu", ...), "?" for an invalid value. */
const char *kd_activation_name(kd_activation act);

/* y[B,out] = x[B,in] * w[out,in]^T + b[out]; b.buf NULL: no bias. One GEMM (NT) through
 * kd_gemm (dev->gemm_backend) with the bias in its epilogue (built-in), or plus one bias launch
 * (CLBlast). y must not overlap x or w. B, in, out > 0. */
int kd_dense_forward(kd_device *dev, kd_ref y, kd_ref x, kd_ref w, kd_ref b, size_t B, size_t in,
                     size_t out, kd_error *err);

/* A dense layer and the activation after it: y = act(x * w^T + b), act a kd_activation or -1
 * (none: kd_dense_forward). pre.buf non-NULL also keeps x * w^T + b there (gelu's backward
 * needs it; relu, tanh and sigmoid work from y). One launch with the built-in GEMM (its
 * epilogue), a GEMM and one bias+activation launch with CLBlast; the same bits as
 * kd_dense_forward then kd_activation_forward either way. */
int kd_dense_forward_act(kd_device *dev, kd_ref y, kd_ref pre, kd_ref x, kd_ref w, kd_ref b,
                         size_t B, size_t in, size_t out, int act, kd_error *err);

/* Gradients of kd_dense_forward given dy[B,out] and the forward input x[B,in]:
 *   dx[B,in] = dy * w        (dx.buf NULL: skipped, e.g. for the first layer)
 *   dw[out,in] = dy^T * x
 *   db[out] = sum over the B rows of dy   (db.buf NULL: none)
 * Each result is overwritten, not accumulated. Two or three GEMMs, with the db sum inside the
 * dw GEMM on the built-in back end (plus one column-sum launch with CLBlast); the db sum runs
 * rows in order, so it is deterministic. */
int kd_dense_backward(kd_device *dev, kd_ref dx, kd_ref dw, kd_ref db, kd_ref dy, kd_ref x,
                      kd_ref w, size_t B, size_t in, size_t out, kd_error *err);

/* kd_dense_backward for a layer that follows an activation (act a kd_activation; -1: none,
 * plain kd_dense_backward): its input gradient goes on through that activation,
 *   dx = act'(.) * (dy * w)
 * from the activation's saved output act_y (relu, tanh, sigmoid) or input act_x (gelu, or
 * act_y.buf NULL), so the activation's own backward is not run. With the built-in GEMM: the
 * activation gradient in the dx GEMM's epilogue and db beside dw in one GEMM, two or three
 * launches in all; with CLBlast the separate kernels. The same bits either way. */
int kd_dense_backward_act(kd_device *dev, kd_ref dx, int act, kd_ref act_x, kd_ref act_y,
                          kd_ref dw, kd_ref db, kd_ref dy, kd_ref x, kd_ref w, size_t B,
                          size_t in, size_t out, kd_error *err);

/* y[i] = act(x[i]) for i < n; y may alias x. gelu is the erf form 0.5*x*(1+erf(x/sqrt(2))),
 * PyTorch's default. One launch. */
int kd_activation_forward(kd_device *dev, kd_activation act, kd_ref y, kd_ref x, size_t n,
                          kd_error *err);

/* dx[i] = dy[i] * act'(x[i]) for i < n, where x is the forward input and y the forward
 * output. relu, tanh and sigmoid use y (x when y.buf is NULL); gelu uses x (x.buf NULL: -1).
 * dx may alias dy. One launch. */
int kd_activation_backward(kd_device *dev, kd_activation act, kd_ref dx, kd_ref dy, kd_ref x,
                           kd_ref y, size_t n, kd_error *err);

/* Inverted dropout with PyTorch semantics: y[i] = x[i] * mask[i] / (1 - rate), where
 * mask[i] = u(seed, stream, i) >= rate and u is uniform in [0,1) (24 bits) from Philox-4x32-10
 * keyed by seed, counter (i/4, 0, stream), computed inside the kernel: the same (seed,
 * stream) repeats bit for bit, and i counts from the start of the call (x.off does not move
 * the mask). Give every dropout layer and step its own stream. rate in [0, 1]: 0 copies (no
 * launch when y is x), 1 zeroes; anything else is -1. y may alias x. One launch. */
int kd_dropout_forward(kd_device *dev, kd_ref y, kd_ref x, size_t n, float rate, uint64_t seed,
                       uint64_t stream, kd_error *err);
/* dx = dy * mask / (1 - rate) with the mask regenerated from the forward's (seed, stream).
 * dx may alias dy. One launch. */
int kd_dropout_backward(kd_device *dev, kd_ref dx, kd_ref dy, size_t n, float rate,
                        uint64_t seed, uint64_t stream, kd_error *err);

/* The input normalisation x = (raw * scale - mean) / std as the kernels apply it: one fused
 * multiply-add, fma(raw, a, b), with a = scale / std and b = -mean / std computed in double and
 * rounded to float (within 1 ulp of the three-operation formula, and a fifth of its time on a
 * CPU, where the division dominated). Errors: std zero or not finite, scale or mean not
 * finite, or a or b out of float range. */
int kd_normalize_coefficients(float scale, float mean, float std, float *a, float *b,
                              kd_error *err);

/* Inputs onto the device as float: out[i] = normalised in[i] (kd_normalize_coefficients) for
 * i < n, with in uint8 (in_is_u8 != 0; in.off in bytes) or float32 (in.off in floats). One
 * launch. */
int kd_normalize_inputs(kd_device *dev, kd_ref out, kd_ref in, int in_is_u8, size_t n,
                        float scale, float mean, float std, kd_error *err);

#endif
