import hashlib
import http.server
import threading
import warnings

import pytest
import torch
from torchvision.models import resnet18 as tv_resnet18

from charlib.training import model as charmodel
from charlib.training.model import MODELS, STEMS, build, resnet18


@pytest.fixture
def fake_imagenet(tmp_path):
    """A ResNet-18 state dict standing in for torchvision's ImageNet weights."""
    torch.manual_seed(123)
    state = tv_resnet18(weights=None).state_dict()
    blob = tmp_path / "blob.pth"
    torch.save(state, blob)
    return state, blob


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(charmodel, "_warned", False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    ("stem", "channels", "size"),
    [("small", 1, 28), ("small", 3, 32), ("imagenet", 3, 224), ("imagenet", 1, 56)],
)
def test_shapes(stem, channels, size):
    net = resnet18(95, stem=stem, in_channels=channels).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, channels, size, size)).shape == (2, 95)


def test_small_stem_keeps_resolution():
    net = resnet18(10, stem="small")
    assert net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    assert isinstance(net.maxpool, torch.nn.Identity)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stem": "x"}, "unknown stem 'x'; expected 'imagenet' or 'small'"),
        ({"in_channels": 2}, "in_channels must be 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet18(10, **kwargs)


def _place_in_cache(torch_home, blob):
    torch_home.mkdir(parents=True)
    (torch_home / charmodel.WEIGHTS_URL.rsplit("/", 1)[1]).write_bytes(blob.read_bytes())


def test_pretrained_from_cache_rgb(fake_imagenet, torch_home):
    state, blob = fake_imagenet
    _place_in_cache(torch_home, blob)
    net = resnet18(7, stem="imagenet", in_channels=3, pretrained=True)
    assert torch.equal(net.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert net.fc.weight.shape == (7, 512)  # fresh head sized to the classes


def test_pretrained_grayscale_sums_rgb(fake_imagenet, torch_home):
    state, blob = fake_imagenet
    _place_in_cache(torch_home, blob)
    net = resnet18(7, stem="imagenet", in_channels=1, pretrained=True)
    assert torch.allclose(net.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


def test_pretrained_small_stem_keeps_fresh_conv1(fake_imagenet, torch_home):
    state, blob = fake_imagenet
    _place_in_cache(torch_home, blob)
    net = resnet18(7, stem="small", in_channels=1, pretrained=True)
    assert net.conv1.weight.shape == (64, 1, 3, 3)
    assert torch.equal(net.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(net.bn1.running_var, state["bn1.running_var"])


@pytest.fixture
def weights_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pretrained_download_from_local_server(
    fake_imagenet, torch_home, weights_server, monkeypatch
):
    state, blob = fake_imagenet
    root, base = weights_server
    name = f"resnet18-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    (root / name).write_bytes(blob.read_bytes())
    monkeypatch.setenv("CHARLIB_WEIGHTS_URL", f"{base}/{name}")
    net = resnet18(5, stem="imagenet", in_channels=3, pretrained=True)
    assert torch.equal(net.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    assert (torch_home / name).is_file()  # cached for next time


def test_corrupted_download_is_refused(fake_imagenet, torch_home, weights_server, monkeypatch):
    _, blob = fake_imagenet
    root, base = weights_server
    (root / "resnet18-00000000.pth").write_bytes(blob.read_bytes())  # hash prefix does not match
    monkeypatch.setenv("CHARLIB_WEIGHTS_URL", f"{base}/resnet18-00000000.pth")
    with pytest.warns(UserWarning, match="training from scratch"):
        resnet18(5, stem="imagenet", pretrained=True)


def test_offline_warns_once_and_trains_from_scratch(torch_home, monkeypatch):
    monkeypatch.setenv("CHARLIB_WEIGHTS_URL", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.warns(UserWarning, match="ImageNet weights unavailable.*training from scratch"):
        net = resnet18(5, stem="imagenet", pretrained=True)
    assert net.fc.out_features == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second model says nothing more
        resnet18(5, stem="imagenet", pretrained=True)


@pytest.mark.parametrize(("stem", "size"), [("imagenet", 28), ("imagenet", 64), ("small", 28)])
def test_centre_tap_convolutions_change_nothing_but_speed(stem, size):
    """layer4's 3×3 convolutions on a 1×1 input use their centre tap alone: same outputs, same
    gradients as torchvision's ResNet-18 with the same weights, at every input size."""
    torch.manual_seed(0)
    ours = resnet18(10, stem=stem, in_channels=1)
    theirs = resnet18(10, stem=stem, in_channels=1)
    for conv in theirs.modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.__class__ = torch.nn.Conv2d  # torchvision's own forward everywhere
    theirs.load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == set(tv_resnet18(num_classes=10).state_dict())
    patched = [m for m in ours.modules() if isinstance(m, charmodel.CentreTapConv)]
    assert len(patched) == 3  # layer4: block 1's second conv, block 2's two
    x = torch.randn(8, 1, size, size)
    y = torch.randint(0, 10, (8,))
    outs = []
    for net in (ours, theirs):
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outs.append((out.detach(), {n: p.grad for n, p in net.named_parameters()}))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("stem", STEMS)
def test_every_model_reads_a_28px_grayscale_character(name, stem):
    net = build(name, 62, stem=stem, in_channels=1).eval()
    with torch.no_grad():
        out = net(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 62) and torch.isfinite(out).all()


def test_unknown_models_and_weights_are_refused():
    with pytest.raises(ValueError, match="unknown model 'vgg'; expected one of resnet18, resnet34"):
        build("vgg", 10)
    with pytest.raises(ValueError, match="pretrained weights are offered for resnet18 only"):
        build("resnet34", 10, pretrained=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in MODELS if m != "resnet18"])
def test_every_model_trains_resumes_predicts_and_exports(name, tmp_path):
    """Each architecture goes through the whole path: fit, checkpoint, resume check, the
    Predictor on a drawing, and ONNX export giving the same probabilities."""
    from test_train import cpu_fit, tiny

    from charlib.inference.export import onnx as export_onnx
    from charlib.inference.infer import Predictor
    from charlib.training import checkpoint
    from charlib.vision.strokes import SCRIPTED

    run = tmp_path / name
    data = tiny()
    summary = cpu_fit(data, run_dir=run, epochs=1, batch_size=32, model=name)
    assert summary["epochs_run"] == 1
    assert checkpoint.load(run / "best.pt")["params"]["model"] == name
    with pytest.raises(ValueError, match="holds a run with other model"):
        cpu_fit(data, run_dir=run, epochs=1, batch_size=32, model="resnet18")
    torch_predictor = Predictor.from_run(run)
    assert len(torch_predictor.predict(SCRIPTED["A"], top_k=3)) == 3
    export_onnx(run)
    onnx = Predictor.from_run(run, backend="onnx")
    diff = onnx.probabilities(data.images[:5]) - torch_predictor.probabilities(data.images[:5])
    assert abs(diff).max() < 1e-4
