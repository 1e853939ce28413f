"""``benchmarks/learn_from_config.py --set``: dotted paths into a loaded preset, numbers indexing lists."""

import pytest


def _preset():
    return {"model": {"init_args": {"core": {"init_args": {"heads": [{"init_args": {"pop_bias": 0.0}}, {"init_args": {}}]}}}}}


def test_a_number_in_the_path_indexes_a_list(benchmark_script):
    module, preset = benchmark_script("learn_from_config"), _preset()
    module.set_entries(preset, [("model.init_args.core.init_args.heads.1.init_args.pop_bias", -3.0),
                                ("model.init_args.core.init_args.heads.0.init_args.push_bias", [3.0, -6.0]),
                                ("model.init_args.optimizer.init_args.lr", 0.01)])
    heads = preset["model"]["init_args"]["core"]["init_args"]["heads"]
    assert heads == [{"init_args": {"pop_bias": 0.0, "push_bias": [3.0, -6.0]}}, {"init_args": {"pop_bias": -3.0}}]
    assert preset["model"]["init_args"]["optimizer"] == {"init_args": {"lr": 0.01}}
    module.set_entries(preset, [("model.init_args.core.init_args.heads.0", {"class_path": "ReadHead"})])
    assert heads[0] == {"class_path": "ReadHead"}


@pytest.mark.parametrize("index", ["2", "first"])
def test_a_bad_list_index_names_the_path_and_the_range(benchmark_script, index):
    module = benchmark_script("learn_from_config")
    with pytest.raises(SystemExit, match=rf"^--set model\.init_args\.core\.init_args\.heads\.{index}\.init_args\.pop_bias: "
                                         rf"model\.init_args\.core\.init_args\.heads is a list of 2 entries, so '{index}' must be "
                                         r"an index from 0 to 1; fix that part of the path\.$"):
        module.set_entries(_preset(), [(f"model.init_args.core.init_args.heads.{index}.init_args.pop_bias", -3.0)])
