// Adam's parameter update, in place (the CUDA twin of kernels/reference/adam.py):
//
//   m <- beta1 * m + (1 - beta1) * g,   v <- beta2 * v + (1 - beta2) * g^2,
//   theta <- theta - step_size * m / (sqrt(v / bias2) + eps)
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text. One thread per element
// (grid-stride loop); every scalar arrives in real_t.

extern "C" __global__ void adam_update(real_t* __restrict__ theta, const real_t* __restrict__ grad,
                                       real_t* __restrict__ m, real_t* __restrict__ v, real_t step_size,
                                       real_t beta1, real_t one_minus_beta1, real_t beta2, real_t one_minus_beta2,
                                       real_t eps, real_t bias2, long long size) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        real_t g = grad[i];
        real_t mi = m[i] * beta1 + one_minus_beta1 * g;
        real_t vi = v[i] * beta2 + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        theta[i] -= step_size * mi / (sqrt(vi / bias2) + eps);
    }
}
