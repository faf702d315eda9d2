"""Tests of diffstride.torch (DiffStride2d, SpectralPool2d, DiffStride1d).

Skipped when PyTorch is not installed. The modules (the library, float32)
are compared with a plain PyTorch port of the reference layer written below
(float64, forward with torch.fft, gradients by autograd): outputs and input
gradients to a relative error of 1e-5, stride gradients to 1e-4. The stride
gradients are also compared with central finite differences of the module's
loss, at strides where no frequency sits on an end of the mask's ramp (there
the one-sided convention of the reference differs from a central difference).
torch.autograd.gradcheck does not apply: the library computes in float32.

With PyTorch >= 2.4 the modules run as custom operators (diffstride.torch_ops);
CompileTest checks them under torch.compile, torch._dynamo.explain,
torch.library.opcheck and torch.export, and that the older autograd.Function
path gives the same bits.
"""
import contextlib
import copy
import functools
import math
import threading
import unittest
from unittest import mock

try:
    import torch
except ImportError:
    torch = None

import diffstride
from diffstride import _lib

if torch is not None:
    from diffstride.torch import DiffStride1d, DiffStride2d, SpectralPool2d

TOL = 1e-5
TOL_STRIDES = 1e-4
TOL_FD = 1e-3
NO_TORCH = "PyTorch is not installed: the diffstride.torch tests need it"
if torch is None:
    NO_CUSTOM_OPS = NO_TORCH
elif torch.__version__ < (2, 4):
    NO_CUSTOM_OPS = (f"PyTorch {torch.__version__} is older than 2.4 (no torch.library.custom_op): "
                     "diffstride.torch has only its eager path, no torch.compile/export tests")
else:
    NO_CUSTOM_OPS = None
F64 = None if torch is None else torch.float64


# ------------------------------------------- plain PyTorch port (float64)

def clip(v, lower, upper):
    """clip(v, lower, upper) whose gradient passes on the closed interval, as
    TensorFlow's clip_by_value (torch.clamp's is zero at the bounds)."""
    inside = (v >= lower) & (v <= upper)
    return torch.where(inside, v, torch.clamp(v, lower, upper).detach())


def port_effective(strides, h, w, r, shared, lower, upper):
    """Spec step 1: strides (2,) (shared: (1,)) -> (s_h', s_w') (2,). The raise
    to the minimum stride changes only the value (detach); the limits clip."""
    s = strides[:1].expand(2) if shared else strides
    mins = (h / (h - r), w / (w - r))
    floor = torch.tensor([max(mins)] * 2 if shared else mins, dtype=s.dtype)
    return clip(s + (torch.maximum(s, floor) - s).detach(), lower, upper)


def ramp(threshold, positions, r):
    """The mask m(T, p) = clip((R + T - p) / R, 0, 1) on positions (P,) -> (P,)."""
    return clip((r + threshold - positions) / r, 0.0, 1.0)


def vertical_positions(h):
    """p_h(r) of the reference's fftshifted distances, quirk included: (h,)."""
    r = torch.arange(h, dtype=F64)
    if h % 2 == 0:
        return torch.where(r < h / 2, r, h - 1 - r)
    return torch.where(r < (h - 1) / 2, r + 1, h - 1 - r)


def real_inverse(z, n):
    """numpy's irfft along the last axis: z (..., K) complex -> (..., n) real,
    1/n * sum_k c_k Re(z_k e^{+2 pi j k b / n}), c_k = 1 for k = 0 and 2k = n."""
    k = torch.arange(z.shape[-1], dtype=F64)
    b = torch.arange(n, dtype=F64)
    weight = torch.where((k == 0) | (2 * k == n), 1.0, 2.0)
    basis = weight[:, None] * torch.exp(2j * math.pi * k[:, None] * b[None, :] / n) / n
    return (z @ basis).real


def irfft2(z, n):
    """Spec step 9: inverse DFT down the columns of z (N,C,h',K), then real_inverse."""
    return real_inverse(torch.fft.ifft(z, dim=-2), n)


def kept(mask):
    """Indices where the mask is positive (a stop-gradient selection): (K,)."""
    return torch.nonzero(mask.detach() > 0).squeeze(1)


def port_diffstride(x, strides, smoothness=4.0, cropping=True, shared_stride=False,
                    lower_limit=1.0, upper_limit=math.inf):
    """DiffStride forward of the reference layer: x (N,C,H,W) float64 -> y (N,C,h',w')."""
    h, w = x.shape[-2:]
    r = smoothness
    s_h, s_w = port_effective(strides, h, w, r, shared_stride, lower_limit, upper_limit)
    m_h = ramp(clip(h / s_h, 2.0, math.inf) / 2, vertical_positions(h), r)
    m_w = ramp(clip(w / s_w, 2.0, math.inf) / 2 + 1, torch.arange(w // 2 + 1, dtype=F64), r)
    z = torch.fft.rfft2(x) * (m_h[:, None] * m_w[None, :])
    if not cropping:  # the spectrum's own length: an odd width loses a column
        return irfft2(z, 2 * (w // 2))
    cols = kept(m_w)
    z = z.index_select(-2, kept(m_h)).index_select(-1, cols)
    return irfft2(z, 2 * (cols.numel() - 1))


def port_spectral_pool(x, strides):
    """Fixed spectral pooling: x (N,C,H,W) float64 -> (N,C,h',w')."""
    h, w = x.shape[-2:]
    out_h = max(math.floor(h / strides[0]) // 2 * 2, 2)
    out_w = max(math.floor(w / strides[1]), 2)
    rows = torch.cat([torch.arange(out_h // 2), torch.arange(h - out_h // 2, h)])
    z = torch.fft.rfft2(x).index_select(-2, rows)[..., : out_w // 2 + 1]
    return irfft2(z, out_w)


def port_pool(x, _no_strides, strides):
    """port_spectral_pool with the signature of the learnable ports (no stride parameter)."""
    return port_spectral_pool(x, strides)


def port_diffstride1d(x, stride, smoothness=4.0, cropping=True, lower_limit=1.0,
                      upper_limit=math.inf):
    """1-D DiffStride: x (N,C,L) float64, stride (1,) -> y (N,C,l')."""
    length = x.shape[-1]
    r = smoothness
    floor = torch.tensor([length / (length - r)], dtype=F64)
    s = clip(stride + (torch.maximum(stride, floor) - stride).detach(), lower_limit, upper_limit)
    m = ramp(clip(length / s, 2.0, math.inf) / 2 + 1, torch.arange(length // 2 + 1, dtype=F64), r)
    z = torch.fft.rfft(x) * m
    if not cropping:  # the spectrum's own length, as the 2-D layer
        return real_inverse(z, 2 * (length // 2))
    cols = kept(m)
    return real_inverse(z.index_select(-1, cols), 2 * (cols.numel() - 1))


# ----------------------------------------------------------------- helpers

def rel_err(got, want):
    """max|got - want| / max|want| in float64 (the absolute error when want is 0)."""
    got, want = got.detach().double(), want.detach().double()
    scale = want.abs().max().item()
    diff = (got - want).abs().max().item()
    return diff / scale if scale > 0 else diff


class Spy:
    """Records the arguments of a library function and calls it."""

    def __init__(self, name):
        self.function = _lib.FUNCTIONS[name]
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        return self.function(*args)


@contextlib.contextmanager
def spying(*names):
    """{name: Spy} for the library functions `names`, for the with block."""
    spies = {name: Spy(name) for name in names}
    with mock.patch.dict(_lib.FUNCTIONS, spies):
        yield spies


def desc_layout(args):
    """The layout field of the desc argument (args[1], a ctypes.byref)."""
    return args[1]._obj.layout


def random(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def run_module(module, param, x, g):
    """(y, dx, dstrides) of module on x for the loss sum(g * y) (float64);
    `param` is the module's stride parameter or None."""
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    (y.double() * g).sum().backward()
    return y, x.grad, None if param is None else param.grad


def library_and_port(module, param, port, x, seed):
    """Runs module (the library, float32) and port (float64) on x, with the loss
    sum(g * y) for a random g. `param` is the module's stride parameter (or
    None); the port gets a float64 copy of its value before the forward.
    Returns ((y, dx, dstrides) of the module, (y, dx, dstrides) of the port)."""
    s_port = None if param is None else param.detach().double().clone().requires_grad_(True)
    x_port = x.detach().double().requires_grad_(True)
    y_port = port(x_port, s_port)
    g = random(y_port.shape, seed + 1).double()
    (y_port * g).sum().backward()
    lib = run_module(module, param, x, g)
    return lib, (y_port, x_port.grad, None if s_port is None else s_port.grad)


# --------------------------------------------------------------- the tests

@unittest.skipIf(torch is None, NO_TORCH)
class DiffStride2dTest(unittest.TestCase):
    """DiffStride2d against the port: y, dx and dstrides, options of the reference layer."""

    CASES = [
        ((2, 3, 32, 32), (2.3, 2.7), {}),
        ((2, 3, 32, 32), (2.0, 2.0), {}),                       # integer thresholds
        ((2, 2, 31, 17), (1.7, 3.2), {}),
        ((1, 3, 64, 64), (2.0, 4.0), {}),
        ((2, 3, 28, 28), (2.5,), {"smoothness": 2.0, "shared_stride": True}),
        ((2, 3, 24, 20), (1.6, 3.5), {"smoothness": 1.0, "lower_limit": 1.5, "upper_limit": 4.0}),
        ((2, 3, 32, 32), (5.0, 2.5), {"upper_limit": 3.0}),     # s_h clipped: no gradient
        ((2, 3, 32, 32), (2.2, 3.1), {"cropping": False}),
        ((2, 2, 16, 15), (0.5, 1.0), {}),                       # raised to the minimum
        ((1, 2, 33, 9), (2.8, 1.9), {"smoothness": 3.0}),
    ]

    def test_against_port(self):
        for i, (shape, strides, opts) in enumerate(self.CASES):
            with self.subTest(shape=shape, strides=strides, opts=opts):
                module = DiffStride2d(strides, **opts)
                lib, ref = library_and_port(module, module.strides,
                                            functools.partial(port_diffstride, **opts),
                                            random(shape, i), seed=i)
                self.assertEqual(lib[0].shape, ref[0].shape)
                self.assertLess(rel_err(lib[0], ref[0]), TOL)
                self.assertLess(rel_err(lib[1], ref[1]), TOL)
                self.assertEqual(lib[2].shape, ref[2].shape)
                self.assertLess(rel_err(lib[2], ref[2]), TOL_STRIDES)

    def test_effective_strides_are_written_back(self):
        cases = [((32, 32), (0.5, 1.0), {}),
                 ((28, 24), (0.5,), {"shared_stride": True}),
                 ((32, 32), (5.0, 1.2), {"lower_limit": 1.5, "upper_limit": 3.0})]
        for size, strides, opts in cases:
            with self.subTest(size=size, strides=strides, opts=opts):
                module = DiffStride2d(strides, **opts)
                module(torch.zeros((1, 1) + size))
                want = port_effective(torch.tensor(strides, dtype=F64), *size, 4.0,
                                      opts.get("shared_stride", False),
                                      opts.get("lower_limit", 1.0),
                                      opts.get("upper_limit", math.inf))
                self.assertEqual(module.strides.shape, (len(strides),))
                self.assertLess(rel_err(module.strides, want[: len(strides)]), 1e-6)

    def test_finite_differences_of_the_strides(self):
        x = random((2, 3, 32, 32), 10)
        for strides, opts in (((2.3, 2.7), {}), ((2.3, 2.3), {"shared_stride": True})):
            with self.subTest(strides=strides, opts=opts):
                module = DiffStride2d(strides, **opts)
                check_finite_differences(self, module, module.strides, x)

    def test_float64_input(self):
        x = random((2, 3, 32, 32), 11)
        y32 = DiffStride2d((2.3, 2.7))(x)
        x64 = x.double().requires_grad_(True)
        y64 = DiffStride2d((2.3, 2.7))(x64)
        y64.sum().backward()
        self.assertEqual((y64.dtype, x64.grad.dtype), (torch.float64, torch.float64))
        self.assertTrue(torch.equal(y64.float(), y32))

    def test_frozen_strides_skip_the_stride_gradient(self):
        module = DiffStride2d((2.3, 2.7))
        module.strides.requires_grad_(False)
        x = random((2, 3, 32, 32), 12).requires_grad_(True)
        with spying("ds_diffstride_forward", "ds_diffstride_backward_reserved") as spies:
            module(x).sum().backward()
        self.assertEqual(len(spies["ds_diffstride_forward"].calls), 1)  # no reserve kept
        args = spies["ds_diffstride_backward_reserved"].calls[0]
        self.assertIsNone(args[7])   # reserve
        self.assertIsNone(args[13])  # dstrides
        self.assertEqual(x.grad.shape, x.shape)

    def test_learned_strides_keep_a_reserve_not_x(self):
        module = DiffStride2d((2.3, 2.7))
        x = random((2, 3, 32, 32), 13).requires_grad_(True)
        with spying("ds_diffstride_forward_training", "ds_diffstride_backward_reserved") as spies:
            y = module(x)
            y.backward(torch.ones_like(y))
        fwd = spies["ds_diffstride_forward_training"].calls[0]
        bwd = spies["ds_diffstride_backward_reserved"].calls[0]
        self.assertEqual(fwd[11], bwd[7])  # the same reserve
        self.assertEqual(fwd[12], bwd[8])
        self.assertLess(fwd[12], x.numel() * 4)  # smaller than x
        # the plain backward (x kept) gives the same bits
        dx, dstrides = diffstride.diffstride_backward(
            x.detach().numpy(), torch.ones_like(y).numpy(), (2.3, 2.7))
        self.assertTrue(torch.equal(x.grad, torch.from_numpy(dx)))
        self.assertTrue(torch.equal(module.strides.grad, torch.from_numpy(dstrides)))

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            DiffStride2d()(torch.zeros(3, 32, 32))
        with self.assertRaises(TypeError):
            DiffStride2d()(torch.zeros(1, 3, 32, 32, dtype=torch.int64))
        with self.assertRaises(ValueError) as cm:  # the library's InvalidArgumentError
            DiffStride2d()(torch.zeros(1, 3, 4, 32))
        self.assertIn("desc->smoothness", str(cm.exception))


def check_finite_differences(test, module, param, x, eps=1e-2):
    """param.grad of sum(g * module(x)) against central differences, each entry."""
    s0 = param.detach().clone()
    y = module(x)
    g = random(y.shape, 20).double()
    param.grad = None
    (y.double() * g).sum().backward()
    grad = param.grad.clone()
    for i in range(s0.numel()):
        losses = []
        for sign in (1, -1):
            with torch.no_grad():
                param.copy_(s0)
                param[i] += sign * eps
                losses.append(float((module(x).double() * g).sum()))
        fd = (losses[0] - losses[1]) / (2 * eps)
        test.assertLess(abs(grad[i].item() - fd), TOL_FD * abs(fd), f"stride {i}: {grad} vs {fd}")
    with torch.no_grad():
        param.copy_(s0)


@unittest.skipIf(torch is None, NO_TORCH)
class MemoryFormatTest(unittest.TestCase):
    """Channels-last and NCHW inputs reach the library as they are, no copy."""

    def test_channels_last_is_passed_as_nhwc(self):
        module = DiffStride2d((2.3, 2.7))
        x = random((2, 3, 32, 32), 30).requires_grad_(True)
        y = module(x)
        y.backward(torch.ones_like(y))
        xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with spying("ds_diffstride_forward_training", "ds_diffstride_backward_reserved") as spies:
            yc = module(xc)
            yc.backward(torch.ones_like(yc))
        fwd = spies["ds_diffstride_forward_training"].calls[0]
        bwd = spies["ds_diffstride_backward_reserved"].calls[0]
        self.assertEqual((desc_layout(fwd), desc_layout(bwd)), (1, 1))
        self.assertEqual(fwd[7], xc.data_ptr())
        self.assertEqual(fwd[10], yc.data_ptr())
        self.assertTrue(yc.is_contiguous(memory_format=torch.channels_last))
        self.assertTrue(xc.grad.is_contiguous(memory_format=torch.channels_last))
        self.assertTrue(torch.equal(yc, y))
        self.assertTrue(torch.equal(xc.grad, x.grad))

    def test_nchw_is_passed_as_is(self):
        x = random((2, 3, 32, 32), 31)
        with spying("ds_diffstride_forward_training") as spies:  # learned strides: keeps a reserve
            DiffStride2d((2.3, 2.7))(x)
        args = spies["ds_diffstride_forward_training"].calls[0]
        self.assertEqual((desc_layout(args), args[7]), (0, x.data_ptr()))

    def test_other_strides_are_made_contiguous(self):
        module = DiffStride2d((2.3, 2.7))
        base = random((2, 3, 32, 64), 32)
        x = base[..., ::2]
        with spying("ds_diffstride_forward_training") as spies:
            y = module(x)
        self.assertEqual(desc_layout(spies["ds_diffstride_forward_training"].calls[0]), 0)
        self.assertTrue(torch.equal(y, module(x.contiguous())))

    def test_spectral_pool_channels_last(self):
        x = random((2, 3, 31, 17), 33)
        xc = x.contiguous(memory_format=torch.channels_last)
        with spying("ds_spectral_pool_forward") as spies:
            yc = SpectralPool2d((3.0, 1.5))(xc)
        args = spies["ds_spectral_pool_forward"].calls[0]
        self.assertEqual((args[1], args[7]), (1, xc.data_ptr()))
        self.assertTrue(yc.is_contiguous(memory_format=torch.channels_last))
        self.assertTrue(torch.equal(yc, SpectralPool2d((3.0, 1.5))(x)))


@unittest.skipIf(torch is None, NO_TORCH)
class SpectralPool2dTest(unittest.TestCase):

    def test_against_port(self):
        cases = [((2, 3, 32, 32), (2.0, 2.0)), ((2, 3, 64, 64), (2.0, 4.0)),
                 ((1, 2, 31, 17), (3.0, 1.5)), ((2, 2, 28, 28), (2.7, 2.2))]
        for i, (shape, strides) in enumerate(cases):
            for fmt in (torch.contiguous_format, torch.channels_last):
                with self.subTest(shape=shape, strides=strides, memory_format=fmt):
                    x = random(shape, 40 + i).contiguous(memory_format=fmt)
                    lib, ref = library_and_port(SpectralPool2d(strides), None,
                                                functools.partial(port_pool, strides=strides),
                                                x, seed=i)
                    self.assertEqual(lib[0].shape, ref[0].shape)
                    self.assertLess(rel_err(lib[0], ref[0]), TOL)
                    self.assertLess(rel_err(lib[1], ref[1]), TOL)


@unittest.skipIf(torch is None, NO_TORCH)
class DiffStride1dTest(unittest.TestCase):

    CASES = [((2, 3, 40), 2.3, {}), ((2, 3, 32), 2.0, {}), ((1, 2, 33), 3.1, {"cropping": False}),
             ((2, 2, 30), 0.5, {}), ((2, 3, 24), 1.6, {"smoothness": 1.0, "lower_limit": 1.5,
                                                       "upper_limit": 4.0})]

    def test_against_port(self):
        for i, (shape, stride, opts) in enumerate(self.CASES):
            for nlc in (False, True):
                with self.subTest(shape=shape, stride=stride, opts=opts, nlc=nlc):
                    x = random(shape, 50 + i)
                    if nlc:
                        x = x.transpose(1, 2).contiguous().transpose(1, 2)
                    module = DiffStride1d(stride, **opts)
                    lib, ref = library_and_port(module, module.stride,
                                                functools.partial(port_diffstride1d, **opts),
                                                x, seed=i)
                    self.assertEqual(lib[0].shape, ref[0].shape)
                    self.assertLess(rel_err(lib[0], ref[0]), TOL)
                    self.assertLess(rel_err(lib[1], ref[1]), TOL)
                    self.assertLess(rel_err(lib[2], ref[2]), TOL_STRIDES)

    def test_nlc_is_passed_as_is(self):
        x = random((2, 3, 40), 60).transpose(1, 2).contiguous().transpose(1, 2)
        with spying("ds_diffstride1d_forward_training") as spies:  # learned stride: a reserve
            y = DiffStride1d(2.3)(x)
        args = spies["ds_diffstride1d_forward_training"].calls[0]
        self.assertEqual((desc_layout(args), args[6]), (1, x.data_ptr()))
        self.assertTrue(y.transpose(1, 2).is_contiguous())

    def test_learned_stride_keeps_a_reserve_not_x(self):
        module = DiffStride1d(2.3)
        x = random((2, 3, 40), 62).requires_grad_(True)
        with spying("ds_diffstride1d_forward_training", "ds_diffstride1d_backward_reserved") as spies:
            y = module(x)
            y.backward(torch.ones_like(y))
        fwd = spies["ds_diffstride1d_forward_training"].calls[0]
        bwd = spies["ds_diffstride1d_backward_reserved"].calls[0]
        self.assertEqual((fwd[9], fwd[10]), (bwd[6], bwd[7]))  # the same reserve
        dx, dstride = diffstride.diffstride1d_backward(
            x.detach().numpy(), torch.ones_like(y).numpy(), 2.3)
        self.assertTrue(torch.equal(x.grad, torch.from_numpy(dx)))
        self.assertEqual(float(module.stride.grad[0]), float(dstride))

    def test_finite_differences_of_the_stride(self):
        module = DiffStride1d(2.3)
        check_finite_differences(self, module, module.stride, random((2, 3, 40), 61))

    def test_effective_stride_is_written_back(self):
        module = DiffStride1d(0.5)
        module(torch.zeros(1, 1, 32))
        self.assertAlmostEqual(module.stride.item(), 32 / 28, places=6)


def library_has_cuda():
    """Whether the loaded library can make a CUDA context here."""
    import diffstride
    try:
        diffstride.Context("cuda").close()
        return True
    except diffstride.UnsupportedError:
        return False


@unittest.skipIf(torch is None, NO_TORCH)
class DeviceTest(unittest.TestCase):

    @unittest.skipUnless(torch is not None and torch.cuda.is_available(), "no CUDA device")
    def test_cuda_matches_cpu_or_names_the_missing_path(self):
        x = random((2, 3, 32, 32), 71).contiguous(memory_format=torch.channels_last)
        g = random((2, 3, 22, 20), 72).double()
        cpu, gpu = DiffStride2d((2.3, 2.7)), DiffStride2d((2.3, 2.7)).cuda()
        if not library_has_cuda():  # then, and only then, a clear error is the answer
            with self.assertRaisesRegex(RuntimeError, "move the tensors to the CPU"):
                run_module(gpu, gpu.strides, x.cuda(), g.cuda())
            return
        on_gpu = run_module(gpu, gpu.strides, x.cuda(), g.cuda())
        on_cpu = run_module(cpu, cpu.strides, x, g)
        self.assertTrue(on_gpu[0].is_cuda)
        self.assertTrue(on_gpu[0].is_contiguous(memory_format=torch.channels_last))
        for got, want, tol in zip(on_gpu, on_cpu, (TOL, TOL, TOL_STRIDES)):
            self.assertLess(rel_err(got.cpu(), want), tol)

    def test_backward_on_another_thread(self):
        module = DiffStride2d((2.3, 2.7))
        x = random((2, 3, 32, 32), 70).requires_grad_(True)
        y = module(x)
        errors = []

        def backward():
            try:
                y.sum().backward()
            except Exception as exc:  # reported in the main thread
                errors.append(exc)

        t = threading.Thread(target=backward)
        t.start()
        t.join()
        self.assertEqual(errors, [])
        self.assertEqual(x.grad.shape, x.shape)


# ------------------------------------------- torch.compile, torch.export

if torch is not None:
    class SmallCNN(torch.nn.Module):
        """conv -> layer -> conv -> global average pool -> linear, 2-D or 1-D:
        x (2,3,H,W) or (2,3,L) -> (2,4). An explicit forward: inside
        nn.Sequential's loop, a graph break makes dynamo run the whole loop
        eagerly."""

        def __init__(self, layer, ndim, seed=0):
            super().__init__()
            torch.manual_seed(seed)
            conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv1d
            self.conv1, self.layer = conv(3, 6, 3, padding=1), layer
            self.conv2 = conv(6, 6, 3, padding=1)
            self.fc = torch.nn.Linear(6, 4)

        def forward(self, x):
            y = self.conv2(self.layer(self.conv1(x)))
            return self.fc(y.mean(tuple(range(2, y.dim()))))


def is_stride(name):
    return name.endswith("strides") or name.endswith("stride")


def train(model, run, x, steps, stride_lr):
    """`steps` SGD steps of run(x) (model, or model compiled) on the loss
    sum(y^2); the strides learn with stride_lr, so that the layer's output
    size changes. Per step: (y, dx, {name: grad}, {name: value after the
    forward}) (the strides' values then are the effective strides)."""
    params = dict(model.named_parameters())
    optimizer = torch.optim.SGD([
        {"params": [p for n, p in params.items() if not is_stride(n)], "lr": 0.05},
        {"params": [p for n, p in params.items() if is_stride(n)], "lr": stride_lr}])
    results = []
    for _ in range(steps):
        xg = x.detach().clone().requires_grad_(True)
        y = run(xg)
        y.square().sum().backward()
        results.append((y.detach(), xg.grad,
                        {n: p.grad.clone() for n, p in params.items()},
                        {n: p.detach().clone() for n, p in params.items()}))
        optimizer.step()
        optimizer.zero_grad()
    return results


def layer_sizes(model, x, steps, stride_lr):
    """The layer's output shape at each step of train(model, model, ...)."""
    shapes = []
    hook = model.layer.register_forward_hook(lambda _m, _i, y: shapes.append(tuple(y.shape)))
    try:
        train(model, model, x, steps, stride_lr)
    finally:
        hook.remove()
    return shapes


@unittest.skipIf(NO_CUSTOM_OPS, NO_CUSTOM_OPS)
class CompileTest(unittest.TestCase):
    """The custom-operator path (PyTorch >= 2.4): torch.compile, explain,
    opcheck, export, and the same bits as the autograd.Function path.

    Output sizes: spectral pooling's are static. DiffStride's follow the
    strides' values, which the fake kernels give as unbacked symbolic sizes;
    by default dynamo declines such an operator (capture_dynamic_output_shape_ops
    is off) and breaks the graph at it, so that inductor gets concrete sizes
    after it (inductor cannot lower a convolution on unbacked sizes).
    """

    # name: (layer, ndim, input shape, stride learning rate); the rate makes
    # the DiffStride output size change between the two steps.
    MODELS = {
        "DiffStride2d": (lambda: DiffStride2d((2.3, 2.7)), 2, (2, 3, 24, 24), 3000.0),
        "DiffStride1d": (lambda: DiffStride1d(2.3), 1, (2, 3, 40), 1000.0),
        "SpectralPool2d": (lambda: SpectralPool2d((2.0, 3.0)), 2, (2, 3, 24, 24), 0.0),
    }

    def model(self, name):
        """(a fresh SmallCNN with the layer `name`, x)."""
        make, ndim, shape, _ = self.MODELS[name]
        return SmallCNN(make(), ndim), random(shape, 80)

    def assert_same_training(self, want, got):
        """Two train() results agree: outputs, dx, every gradient and the
        written-back strides."""
        for step, (w, g) in enumerate(zip(want, got)):
            with self.subTest(step=step):
                self.assertLess(rel_err(g[0], w[0]), TOL)
                self.assertLess(rel_err(g[1], w[1]), TOL)
                for name in w[2]:
                    tol = TOL_STRIDES if is_stride(name) else TOL
                    self.assertLess(rel_err(g[2][name], w[2][name]), tol, name)
                    self.assertLess(rel_err(g[3][name], w[3][name]), TOL, name)

    def check_compiled(self, name, **compile_options):
        """Two training steps of the compiled model against eager."""
        eager, x = self.model(name)
        stride_lr = self.MODELS[name][3]
        if stride_lr:
            sizes = layer_sizes(copy.deepcopy(eager), x, 2, stride_lr)
            self.assertNotEqual(sizes[0], sizes[1], "the strides' step should change the size")
        model = copy.deepcopy(eager)
        compiled = torch.compile(model, **compile_options)
        self.assert_same_training(train(eager, eager, x, 2, stride_lr),
                                  train(model, compiled, x, 2, stride_lr))

    def test_compiled_equals_eager(self):
        for name in self.MODELS:
            with self.subTest(layer=name):
                torch._dynamo.reset()
                self.check_compiled(name)

    def test_fullgraph_with_unbacked_sizes(self):
        # One graph with the DiffStride operator in it (fullgraph=True lets
        # dynamo capture its data-dependent sizes); aot_eager, because
        # inductor (2.15, CPU) cannot lower the convolution after it on
        # unbacked sizes.
        for name in ("DiffStride2d", "DiffStride1d"):
            with self.subTest(layer=name):
                torch._dynamo.reset()
                self.check_compiled(name, fullgraph=True, backend="aot_eager")

    def test_no_graph_break_but_at_the_diffstride_operator(self):
        for name in self.MODELS:
            with self.subTest(layer=name):
                model, x = self.model(name)
                torch._dynamo.reset()
                explained = torch._dynamo.explain(model)(x)
                if name == "SpectralPool2d":
                    self.assertEqual((explained.graph_count, explained.graph_break_count), (1, 0))
                    continue
                # The one operator with data-dependent output sizes, declined
                # by default; the break shows once per frame on the stack
                # (the model's forward, then _learned_forward).
                op = f"diffstride.{name.lower()}.default"
                self.assertTrue(explained.break_reasons)
                for reason in explained.break_reasons:
                    self.assertTrue(reason.reason.startswith("Dynamic shape operator"),
                                    reason.reason)
                    self.assertIn(op, reason.reason)
                    self.assertEqual(reason.user_stack[-2].name, "_learned_forward")
                torch._dynamo.reset()
                with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
                    explained = torch._dynamo.explain(model)(x)
                self.assertEqual((explained.graph_count, explained.graph_break_count), (1, 0))

    def test_opcheck(self):
        from diffstride import torch_ops as ops
        x = random((2, 3, 20, 18), 90)
        xc = x.contiguous(memory_format=torch.channels_last)
        x1 = random((2, 3, 33), 91)
        x1t = x1.transpose(1, 2).contiguous().transpose(1, 2)  # NLC
        s, s1 = torch.tensor([2.3, 2.7]), torch.tensor([2.3])
        desc = (4.0, True, False, 1.0, math.inf)
        forwards = [
            (ops.diffstride2d, (x.clone().requires_grad_(True), s.clone().requires_grad_(True),
                                *desc, True)),
            (ops.diffstride2d, (xc, s, *desc, True)),
            (ops.diffstride2d, (x, s, 4.0, False, False, 1.0, math.inf, False)),  # cropping off
            (ops.diffstride2d, (xc, s[:1], 2.0, True, True, 1.5, 3.0, True)),  # shared, limits
            (ops.diffstride1d, (x1.clone().requires_grad_(True), s1.clone().requires_grad_(True),
                                *desc, True)),
            (ops.diffstride1d, (x1t, s1, *desc, False)),
            (ops.spectral_pool2d, (x.clone().requires_grad_(True), [2.0, 3.0])),
            (ops.spectral_pool2d, (xc, [1.5, 2.5])),
        ]
        backwards = []
        learned = ((ops.diffstride2d, ops.diffstride2d_backward, (x, xc), s),
                   (ops.diffstride1d, ops.diffstride1d_backward, (x1, x1t), s1))
        for op, backward_op, xs, strides in learned:
            for xi in xs:  # the backward's inputs from a forward, NCHW / NCL, then NHWC / NLC
                y, reserve, _ = op(xi, strides, *desc, True)
                dy = random(y.shape, 92)
                nhwc = not xi.is_contiguous()
                for need in ((True, True), (True, False), (False, True)):  # need_dx, need_dstrides
                    backwards.append((backward_op, (dy, reserve, strides, *xi.shape[2:], *desc,
                                                    nhwc, *need)))
        for xi, nhwc in ((x, False), (xc, True)):
            dy = random(ops.spectral_pool2d(xi, [2.0, 3.0]).shape, 93)
            backwards.append((ops.spectral_pool2d_backward, (dy, 20, 18, [2.0, 3.0], nhwc)))
        for i, (op, args) in enumerate(forwards + backwards):
            with self.subTest(op=str(op), sample=i):
                torch.library.opcheck(op, args)

    def test_export(self):
        for name in self.MODELS:
            with self.subTest(layer=name):
                eager, x = self.model(name)
                exported = torch.export.export(copy.deepcopy(eager), (x,)).module()
                stride_lr = self.MODELS[name][3]
                self.assert_same_training(train(eager, eager, x, 2, stride_lr),
                                          train(exported, exported, x, 2, stride_lr))

    def test_export_dynamic_batch(self):
        for name in self.MODELS:
            with self.subTest(layer=name):
                model, x = self.model(name)
                batch = torch.export.Dim("batch")
                exported = torch.export.export(copy.deepcopy(model), (x,),
                                               dynamic_shapes=({0: batch},)).module()
                x5 = random((5,) + x.shape[1:], 81)
                self.assertLess(rel_err(exported(x5), model(x5)), TOL)

    def test_function_path_gives_the_same_bits(self):
        import diffstride.torch as modules
        x = random((2, 3, 32, 32), 94)
        x1 = random((2, 3, 40), 95).transpose(1, 2).contiguous().transpose(1, 2)
        cases = [
            (lambda: DiffStride2d((2.3, 2.7)), x),
            (lambda: DiffStride2d((2.3, 2.7)), x.contiguous(memory_format=torch.channels_last)),
            (lambda: DiffStride2d((0.5,), shared_stride=True, upper_limit=3.0), x),
            (lambda: DiffStride2d((2.2, 3.1), cropping=False), x),
            (lambda: DiffStride1d(2.3), x1),
            (lambda: SpectralPool2d((2.0, 3.0)), x.contiguous(memory_format=torch.channels_last)),
        ]
        for i, (make, xi) in enumerate(cases):
            results = []
            for custom_ops in (True, False):
                with mock.patch.object(modules, "_CUSTOM_OPS", custom_ops):
                    module = make()
                    param = next(module.parameters(), None)
                    xg = xi.detach().clone().requires_grad_(True)
                    y = module(xg)
                    (y * random(y.shape, 96)).sum().backward()
                    results.append([y, xg.grad] + ([] if param is None else [param.grad, param]))
            with self.subTest(case=i):
                for got, want in zip(*results):
                    self.assertEqual(got.stride(), want.stride())
                    self.assertTrue(torch.equal(got, want))


if __name__ == "__main__":
    unittest.main()
