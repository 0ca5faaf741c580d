// undistort.cu: remap an image through a per-pixel map of source positions (bilinear), the
// step that turns a distorted capture into a pinhole image once at load (and back, in tests).
//
// Math:    out[y, x] = bilinear sample of image at source_xy[y, x] = (u, v), in pixel units
//          with pixel (i, j) centred at (i + 0.5, j + 0.5) (splat_lion/cameras.py). With
//          px = u - 0.5, py = v - 0.5, x0 = floor(px), y0 = floor(py), a = px - x0,
//          b = py - y0: out = (1-a)(1-b) I[y0, x0] + a(1-b) I[y0, x0+1]
//                             + (1-a) b I[y0+1, x0] + a b I[y0+1, x0+1],
//          every tap index clamped to the image (0..W-1, 0..H-1), so between the border and
//          the outermost pixel centres the nearest centres are sampled.
//          valid[y, x] = 0 <= u <= W and 0 <= v <= H (false for NaN: "no source");
//          invalid pixels get out = 0 in every channel.
//          An integer + 0.5 position reproduces its pixel bit for bit (a = b = 0).
// Mapping: one thread per output pixel p = y * W2 + x, looping over the C channels.
// Layout:  image: [H, W, C] float32; source_xy: [H2, W2, 2] float32 (u, v);
//          out: [H2, W2, C] float32; valid: [H2, W2] bool. n = H2 * W2.
#include "common.cuh"

extern "C" __global__ void undistort_remap(const float* __restrict__ image, int width, int height,
                                           int channels, const float* __restrict__ source_xy,
                                           long long n, float* __restrict__ out,
                                           bool* __restrict__ valid) {
    const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const float u = source_xy[2 * p];
    const float v = source_xy[2 * p + 1];
    float* dst = out + p * channels;  // [C]

    // valid iff the position lies inside [0, W] x [0, H] (NaN compares false)
    const bool inside = u >= 0.0f && u <= (float)width && v >= 0.0f && v <= (float)height;
    valid[p] = inside;
    if (!inside) {
        for (int c = 0; c < channels; c++) dst[c] = 0.0f;
        return;
    }

    // the four pixel centres around (u, v), clamped to the image
    const float px = u - 0.5f, py = v - 0.5f;
    const float fx0 = floorf(px), fy0 = floorf(py);
    const float a = px - fx0, b = py - fy0;
    const int x0 = min(max((int)fx0, 0), width - 1), x1 = min(max((int)fx0 + 1, 0), width - 1);
    const int y0 = min(max((int)fy0, 0), height - 1), y1 = min(max((int)fy0 + 1, 0), height - 1);
    const float w00 = (1.0f - a) * (1.0f - b), w01 = a * (1.0f - b);
    const float w10 = (1.0f - a) * b, w11 = a * b;

    // [C] each: the taps' channels
    const float* i00 = image + ((long long)y0 * width + x0) * channels;
    const float* i01 = image + ((long long)y0 * width + x1) * channels;
    const float* i10 = image + ((long long)y1 * width + x0) * channels;
    const float* i11 = image + ((long long)y1 * width + x1) * channels;
    for (int c = 0; c < channels; c++)
        dst[c] = w00 * i00[c] + w01 * i01[c] + w10 * i10[c] + w11 * i11[c];
}
