"""The template's layer graph as the folded program reads it, and the rewrites it allows.

The program computes some parts of a model otherwise than layer by layer, each output value the
same: parallel branches as one convolution (:func:`branch_fusions`), and a convolution's bias and
ReLU after its max pooling (:func:`deferred_convolutions`).
"""

from __future__ import annotations

from mer_keras._keras import keras, tf


def _config(layer) -> dict:
    """A layer's config without what may differ between fusable twins (name, filters, initialisers)."""
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "filters", "dtype",
                                                                      "kernel_initializer", "bias_initializer")}


def layer_graph(template: keras.Model) -> tuple[dict[str, list], set[str]]:
    """({layer name: the layers that take its output}, names of the layers whose outputs are the model's)."""
    consumers: dict[str, list] = {}
    for layer in template.layers:
        for node in layer._inbound_nodes:
            for kt in node.keras_inputs:
                consumers.setdefault(kt._keras_history[0].name, []).append(layer)
    return consumers, {kt._keras_history[0].name for kt in tf.nest.flatten(template._nested_outputs)}


def branch_fusions(template: keras.Model) -> list[dict]:
    """Parallel branches the program computes as one: convolutions of one input, each followed by
    the same chain of per-channel layers (pooling, activations), concatenated on the channel axis
    (STSTNet's three streams). One convolution with all their filters, then the chain once, gives
    the concatenation: fewer, larger ops. Each output channel is the same dot product as before.

    Returns:
        Per fusion: {"concat": the Concatenate layer's name, "convs": the branch convolutions in
        concatenation order, "chain": the layers after the first branch's convolution, "input": the
        shared input (KerasTensor)}.
    """
    users, outputs = layer_graph(template)
    consumers = {name: len(layers) for name, layers in users.items()}
    fusions = []
    for concat in template.layers:
        if type(concat).__name__ != "Concatenate" or concat.axis not in (-1, len(concat.output_shape) - 1):
            continue
        chains = []
        for kt in concat._inbound_nodes[0].keras_inputs:
            chain, layer = [], kt._keras_history[0]
            while type(layer).__name__ != "Conv2D":
                if layer.weights or consumers.get(layer.name) != 1 or layer.name in outputs or \
                        len(layer._inbound_nodes[0].keras_inputs) != 1:
                    break
                chain.insert(0, layer)
                layer = layer._inbound_nodes[0].keras_inputs[0]._keras_history[0]
            else:
                if consumers.get(layer.name) == 1 and layer.name not in outputs:
                    chains.append((layer, chain))
                    continue
            chains = []
            break
        if len(chains) < 2:
            continue
        convs = [c for c, _ in chains]
        first_input = convs[0]._inbound_nodes[0].keras_inputs[0]
        same = all(c._inbound_nodes[0].keras_inputs[0] is first_input and _config(c) == _config(convs[0])
                   and c.trainable == convs[0].trainable and c.groups == 1 for c in convs)
        same = same and all(len(ch) == len(chains[0][1]) and all(
            type(a) is type(b) and _config(a) == _config(b) for a, b in zip(ch, chains[0][1])) for _, ch in chains)
        if same:
            fusions.append({"concat": concat.name, "convs": convs, "chain": chains[0][1], "input": first_input})
    return fusions


def deferred_convolutions(template: keras.Model) -> set[str]:
    """Names of the convolutions whose only consumer is a max pooling, with a ReLU or no activation:
    the program adds their bias and applies their activation after the pooling, on 1/9 of the
    values. ``max(x + b) = max(x) + b`` and ``max(relu(x)) = relu(max(x))`` hold exactly: adding a
    constant and a ReLU are monotonic, in float as in exact arithmetic."""
    consumers, outputs = layer_graph(template)
    deferred = set()
    for layer in template.layers:
        users = consumers.get(layer.name, [])
        if (type(layer).__name__ == "Conv2D" and layer.name not in outputs and len(users) == 1
                and type(users[0]).__name__ == "MaxPooling2D"
                and layer.activation in (keras.activations.relu, keras.activations.linear)):
            deferred.add(layer.name)
    return deferred
