from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from factory_sim.catalog import builtin_path
from factory_sim.config.hardware import list_hardware, load_hardware
from factory_sim.errors import ConfigError
from factory_sim.results.tables import hardware_table

BUILTINS = ["b200_hgx", "b300_hgx", "gb200_nvl72", "gb300_nvl72", "h100_sxm", "h200_sxm"]


def builtin_dict(name: str) -> dict:
    text = builtin_path("hardware", name).read_text()
    return yaml.safe_load(text)


def write_profile(tmp_path: Path, data: dict, filename: str = "my_gpu.yaml") -> Path:
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_builtin_loads_and_is_named_after_its_file():
    profiles = list_hardware()
    assert [hw.name for hw in profiles] == BUILTINS
    for hw in profiles:
        assert load_hardware(hw.name) is hw  # cached


@pytest.mark.parametrize(
    ("name", "attr", "expected"),
    [
        ("h100_sxm", "hbm_gb", 80),
        ("h200_sxm", "hbm_tb_per_s", 4.8),
        ("b300_hgx", "hbm_gb", 270),
        ("gb300_nvl72", "gpu_tdp_w", 1400),
        ("gb200_nvl72", "allin_kw_per_gpu", 2.1),
        ("b300_hgx", "scaleout_gb_per_s_per_gpu", 100),
        ("h100_sxm", "nvlink_gb_per_s_per_gpu", 450),
    ],
)
def test_values_match_reference(name: str, attr: str, expected: float):
    assert getattr(load_hardware(name), attr) == expected


def test_prices_tflops_and_system_shape_match_reference():
    gb200 = load_hardware("gb200_nvl72")
    assert gb200.dense_tflops == {"bf16": 2500, "fp8": 5000, "fp4": 10000}
    assert (gb200.gpus_per_scaleup_domain, gb200.gpus_per_node, gb200.gpus_per_purchase_unit) == (72, 4, 72)
    assert gb200.purchase_unit == "rack"
    assert gb200.capex_usd_per_gpu == pytest.approx(3.3e6 / 72, rel=1e-6)
    b200 = load_hardware("b200_hgx")
    assert (b200.usd_per_gpu_hour.hyperscaler, b200.usd_per_gpu_hour.neocloud, b200.usd_per_gpu_hour.rental_3yr) == (
        1.95,
        2.34,
        2.9,
    )
    assert b200.capex_usd_per_gpu is None
    assert load_hardware("b300_hgx").usd_per_gpu_hour.neocloud == 2.808
    assert [hw.name for hw in list_hardware() if hw.placeholder_price] == ["b300_hgx", "gb300_nvl72"]
    stacks = {hw.name: hw.default_stack for hw in list_hardware()}
    assert stacks["h100_sxm"] == stacks["h200_sxm"] == "trtllm_hopper"
    assert stacks["gb300_nvl72"] == stacks["b200_hgx"] == "trtllm_blackwell"


def test_si_properties():
    h100 = load_hardware("h100_sxm")
    assert h100.hbm_bytes == 80e9
    assert h100.hbm_bw_bytes_per_s == pytest.approx(3.35e12)
    assert h100.nvlink_bw_bytes_per_s == 450e9
    assert h100.scaleout_bw_bytes_per_s == 50e9
    assert h100.dense_flops_per_s("bf16") == pytest.approx(989e12)
    assert load_hardware("gb300_nvl72").dense_flops_per_s("fp4") == pytest.approx(15e15)


def test_fp4_on_hopper_is_a_config_error_naming_what_is_supported():
    h100 = load_hardware("h100_sxm")
    assert h100.supported_precisions == ("bf16", "fp8")
    assert not h100.supports("fp4")
    assert load_hardware("b200_hgx").supported_precisions == ("bf16", "fp8", "fp4")
    with pytest.raises(ConfigError) as info:
        h100.dense_flops_per_s("fp4")
    assert "h100_sxm" in str(info.value)
    assert "bf16, fp8" in info.value.message


def test_unknown_name_suggests_closest():
    with pytest.raises(ConfigError) as info:
        load_hardware("gb200")
    assert info.value.path == "hardware"
    assert "did you mean 'gb200_nvl72'" in info.value.message
    assert "h100_sxm" in info.value.message and "path to a hardware profile file" in info.value.message


def test_name_lookup_forgives_case_and_dashes():
    assert load_hardware("GB200-NVL72") is load_hardware("gb200_nvl72")


def test_user_profile_from_path(tmp_path: Path):
    data = builtin_dict("h100_sxm") | {"name": "h100_cheap", "hbm_gb": 94}
    data["usd_per_gpu_hour"] = {"hyperscaler": 1.0, "neocloud": 1.1, "rental_3yr": 1.2}
    hw = load_hardware(str(write_profile(tmp_path, data)))
    assert (hw.name, hw.hbm_bytes, hw.usd_per_gpu_hour.neocloud) == ("h100_cheap", 94e9, 1.1)


def test_misspelled_key_names_file_and_field(tmp_path: Path):
    data = builtin_dict("b200_hgx")
    data["hbm_gbs"] = data.pop("hbm_gb")
    path = write_profile(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_hardware(str(path))
    assert str(path) in str(info.value)
    assert "hardware.hbm_gbs" in str(info.value)
    assert "hardware.hbm_gb:" in str(info.value)  # and the real key is reported missing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hbm_gb": -80}, "hardware.hbm_gb"),
        ({"gpu_tdp_w": 0}, "hardware.gpu_tdp_w"),
        ({"dense_tflops": {"bf16": 989, "fp8": -1}}, "hardware.dense_tflops.fp8"),
        ({"dense_tflops": {"bf16": 989, "int8": 1979}}, "hardware.dense_tflops"),
        ({"usd_per_gpu_hour": {"hyperscaler": 1.3, "neocloud": 0, "rental_3yr": 1.3}}, "hardware.usd_per_gpu_hour"),
    ],
)
def test_impossible_values_name_the_field(tmp_path: Path, change: dict, field: str):
    path = write_profile(tmp_path, builtin_dict("h100_sxm") | change)
    with pytest.raises(ConfigError) as info:
        load_hardware(str(path))
    assert info.value.path.startswith(field)


def test_tflops_must_include_fp8(tmp_path: Path):
    path = write_profile(tmp_path, builtin_dict("h100_sxm") | {"dense_tflops": {"bf16": 989}})
    with pytest.raises(ConfigError, match="fp8"):
        load_hardware(str(path))


def test_scaleup_domain_must_be_whole_nodes(tmp_path: Path):
    path = write_profile(tmp_path, builtin_dict("gb200_nvl72") | {"gpus_per_node": 5})
    with pytest.raises(ConfigError, match="multiple of gpus_per_node"):
        load_hardware(str(path))


def test_bad_yaml_points_at_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nhbm_gb: [80\ngpu_tdp_w: 700\n")
    with pytest.raises(ConfigError) as info:
        load_hardware(str(path))
    assert info.value.path.startswith(f"{path}:")
    assert "invalid YAML" in info.value.message


def test_non_mapping_yaml_and_missing_file(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_hardware(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_hardware(str(tmp_path / "absent.yaml"))


def test_hardware_table():
    table = hardware_table()
    assert list(table["name"]) == BUILTINS
    row = table.set_index("name").loc["h100_sxm"]
    assert row["fp8_tflops"] == 1979 and math.isnan(row["fp4_tflops"])
    assert row["usd_per_gpu_hour_hyperscaler"] == 1.3
    assert table.set_index("name").loc["gb300_nvl72", "gpus_per_scaleup_domain"] == 72
