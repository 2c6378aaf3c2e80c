import pytest

from iga.config import TrainConfig, build_config


def test_wrong_types_name_the_field():
    with pytest.raises(ValueError) as e:
        build_config(
            TrainConfig, {"data_dir": "d", "out_dir": "o", "lr": "fast", "lora": {"r": 0}}, source="x.yaml"
        )
    msg = str(e.value)
    assert msg.startswith("x.yaml: invalid configuration")
    assert "lr: Input should be a valid number" in msg
    assert "lora.r: Input should be greater than or equal to 1" in msg


def test_unknown_field_and_bad_choice():
    with pytest.raises(ValueError, match="stepz: Extra inputs are not permitted"):
        build_config(TrainConfig, {"data_dir": "d", "out_dir": "o", "stepz": 3})
    with pytest.raises(ValueError, match="mixed_precision: Input should be 'no', 'bf16' or 'fp16'"):
        build_config(TrainConfig, {"data_dir": "d", "out_dir": "o", "mixed_precision": "fp8"})
