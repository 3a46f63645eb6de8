"""LEARNet against Table VII of Verma et al. (IEEE TIP 2019)."""

import pytest

from mer_keras import create_model


def _counts(model):
    return {layer.name: layer.count_params() for layer in model.layers}


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_table_vii_per_layer_counts(variant):
    m = create_model("learnet", 3, variant=variant)
    c = _counts(m)
    assert c["conv1"] == 448
    for b in (1, 2, 3, 4):
        pair = 1 if b <= 2 else 2
        assert c[f"pair{pair}_conv2_b{b}"] == 272
        assert c[f"pair{pair}_conv3_b{b}"] == 4640
        assert c[f"pair{pair}_conv4_b{b}"] == 51264
    assert c["conv5"] == 590080
    assert m.get_layer("norm5").count_params() - 512 == 512  # gamma + beta = 256 + 256 (+ moving stats)
    assert c["fc6"] == (590080 if variant == "paper" else 1048832)
    assert m.get_layer("concat").output_shape == (None, 7, 7, 256)


def test_totals_of_both_variants():
    paper = create_model("learnet", 3, variant="paper")
    released = create_model("learnet", 3, variant="released")
    c = _counts(paper)
    table = (c["conv1"] + sum(v for k, v in c.items() if "_conv" in k) + 512 + c["conv5"] + c["fc6"])
    assert table == 1_405_824  # the table's sum, the paper's "1.4M"
    assert paper.count_params() == 1_406_720 + 257 * 3
    assert released.count_params() == 1_865_472 + 257 * 3
    assert paper.get_layer("conv5").output_shape == (None, 3, 3, 256)
    assert released.get_layer("conv5").output_shape == (None, 4, 4, 256)


def test_accretion_wiring():
    m = create_model("learnet", 3)
    add = m.get_layer("pair1_accretion2_b2_add")
    inbound = {t.node.layer.name for t in add.input} if hasattr(add.input[0], "node") else \
        {n.inbound_layers[i].name for n in add._inbound_nodes for i in range(2)}
    assert inbound == {"pair1_conv2_b1", "pair1_conv2_b2"}
    conv3 = m.get_layer("pair1_conv3_b2")
    assert conv3._inbound_nodes[0].inbound_layers.name == "pair1_accretion2_b2_bn"
    conv3_lateral = m.get_layer("pair1_conv3_b1")
    assert conv3_lateral._inbound_nodes[0].inbound_layers.name == "pair1_conv2_b1"


def test_bad_variant_and_small_input():
    with pytest.raises(ValueError, match="variant"):
        create_model("learnet", 3, variant="v2")
    with pytest.raises(ValueError, match="at least 64"):
        create_model("learnet", 3, input_shape=(28, 28, 3))
