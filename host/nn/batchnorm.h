/* Batch normalisation with PyTorch semantics (nn.BatchNorm1d on [n, C], nn.BatchNorm2d on
 * [n, C, H, W], affine, track_running_stats): one implementation over x viewed as [n, C, S]
 * (S = 1 for 1d, H*W for 2d), floats, row-major; n is the rows in this call and each channel
 * normalises over its N = n*S values. gamma, beta, running_mean, running_var, save_mean,
 * save_invstd, dgamma and dbeta are [C]. Every function enqueues only (no host sync) and
 * returns 0, or -1 with a message in err. Outputs are overwritten, not accumulated. n, C, S
 * must be non-zero and every tensor must fit the kernels' 32-bit indices (offset + extent
 * < 2^32 elements), else -1. Each function is one launch of one work-group of KD_BN_WG
 * work-items per channel, with fixed reduction trees (the same bits on every run). */
#ifndef KD_BATCHNORM_H
#define KD_BATCHNORM_H

#include <stddef.h>

#include "nn/arena.h"
#include "runtime/device.h"

/* Work-items per channel in the kernels; kernels/batchnorm.cl has the same
 * default (a power of two). */
#ifndef KD_BN_WG
#define KD_BN_WG 256
#endif

/* Training mode: per channel mean and biased variance var over the N values,
 *   y = (x - mean) * invstd * gamma + beta,   invstd = 1/sqrt(var + eps)
 *   running_mean = (1 - momentum)*running_mean + momentum*mean
 *   running_var  = (1 - momentum)*running_var  + momentum*var*N/(N-1)     (unbiased)
 * save_mean = mean and save_invstd = invstd are kept for backward. N == 1 is refused ("batch
 * norm needs more than one value per channel", as PyTorch raises). Statistics in float from
 * one read of x: each contiguous segment's mean and sum of squared deviations from it, joined
 * by Chan et al.'s pairwise merge in a fixed tree; deviations are always taken from a nearby
 * mean, so data whose mean is large against its spread (mean 100, std 1) stays accurate to
 * about 1e-6 relative. A second read writes y. y may alias x (x is then gone, and backward
 * needs it). */
int kd_batchnorm_forward_train(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                               kd_ref running_mean, kd_ref running_var, kd_ref save_mean,
                               kd_ref save_invstd, size_t n, size_t C, size_t S, float momentum,
                               float eps, kd_error *err);

/* Evaluation mode: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta. y may
 * alias x. */
int kd_batchnorm_forward_eval(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                              kd_ref running_mean, kd_ref running_var, size_t n, size_t C,
                              size_t S, float eps, kd_error *err);

/* Backward of training mode, given dy, the forward input x and save_mean/save_invstd:
 *   dbeta = sum dy,  dgamma = sum dy*xhat,  xhat = (x - save_mean)*save_invstd
 *   dx = gamma*invstd*(dy - dbeta/N - xhat*dgamma/N)     (dx.buf NULL: skipped)
 * dx may alias dy. */
int kd_batchnorm_backward(kd_device *dev, kd_ref dx, kd_ref dgamma, kd_ref dbeta, kd_ref dy,
                          kd_ref x, kd_ref gamma, kd_ref save_mean, kd_ref save_invstd,
                          size_t n, size_t C, size_t S, kd_error *err);

/* The same three with the activation after the layer fused in (act a kd_activation other
 * than gelu, or -1 for none): the forwards write act(y) (and not y), and the backward takes
 * dy as the activation's output gradient and its output act_y, applying act' on the fly. One
 * pass instead of two over the layer's output each way; the same bits as the batch-norm and
 * activation kernels in turn. */
int kd_batchnorm_forward_train_act(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                                   kd_ref running_mean, kd_ref running_var, kd_ref save_mean,
                                   kd_ref save_invstd, size_t n, size_t C, size_t S,
                                   float momentum, float eps, int act, kd_error *err);
int kd_batchnorm_forward_eval_act(kd_device *dev, kd_ref y, kd_ref x, kd_ref gamma, kd_ref beta,
                                  kd_ref running_mean, kd_ref running_var, size_t n, size_t C,
                                  size_t S, float eps, int act, kd_error *err);
int kd_batchnorm_backward_act(kd_device *dev, kd_ref dx, kd_ref dgamma, kd_ref dbeta, kd_ref dy,
                              kd_ref x, kd_ref gamma, kd_ref save_mean, kd_ref save_invstd,
                              size_t n, size_t C, size_t S, int act, kd_ref act_y,
                              kd_error *err);

#endif
