"""Folds vectorised inside each op: K folds of a network trained by one program, at once.

TensorFlow runs a small network's convolutions (STSTNet: 3 -> 3, 5 and 8 filters on 28 x 28) as
tiny ops at a few per cent of the CPU's matrix-product rate, and K copies of the network in one
Keras model are still K sets of tiny ops. Here the fold is an axis *inside* each op:

* activations of K folds are laid side by side on the channel axis, fold-major: a tensor of one
  fold (B, H, W, C) is (B, H, W, K*C) for K folds, sample b of each fold at batch index b;
* a convolution is one grouped convolution whose K groups are the folds (kernel
  (kh, kw, C_in, K*F)); a dense layer one batched product over folds (weights (K, D, U));
  pooling, activations and element-wise merges act on the stacked channels as they are;
  batch normalization keeps per-fold statistics over each fold's own samples; dropout draws
  each fold's mask from the fold's own generator, as the fold trained alone draws it;
* each fold gets its own batches (order, flips, class weights: its own
  :func:`~mer_keras.train.tfdata.training_dataset`), padded to the batch size with samples of
  weight 0 where a fold's last batch is shorter; its loss is its own samples' weighted
  cross-entropy over its own batch size, and the program's loss is the sum over folds, so a
  fold's gradient is its own and Adam's per-element update is the one it gets alone;
* several groups of K folds (G) run in one program (one ``tf.function`` per step).

A fold's result equals that of the fold trained alone (:class:`mer_keras.train.fit.FoldTrainer`)
up to float rounding: a grouped convolution and a batched product sum in other orders than the
single-fold kernels (tests/unit/test_vectorized.py bounds the difference). Measured speed:
docs/BENCHMARKS.md, "The LOSO engine".

The trained folds are extracted as ordinary tf_keras models of the registry
(:meth:`~mer_keras.train.vectorized.model.FoldedModel.fold_weights`), so saving, export, TFLite,
QAT, explain and the edge runner see the models they always saw.

Layers handled: InputLayer, Rescaling, Conv2D (grouped too), Dense, BatchNormalization,
MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten,
Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Activation, ReLU, LeakyReLU,
Softmax, Dropout, ChannelSlice. A model with any other layer (HTNet's attention and layer
normalization, the AU-multitask ConvLSTM's time-distributed blocks) trains one fold at a time
(:func:`~mer_keras.train.vectorized.support.unsupported_layers` names them).

Modules, from the trainer down:

* :mod:`~mer_keras.train.vectorized.trainer`: :class:`VectorizedTrainer`, the engine's entry
  (``fit_program``: G groups of K folds in one Keras ``fit``, each fold's outcome extracted),
  and :func:`program_groups` (how a program's folds split into groups);
* :mod:`~mer_keras.train.vectorized.dataset`: :func:`folded_dataset`, every fold's own batches
  of every epoch, side by side;
* :mod:`~mer_keras.train.vectorized.model`: :class:`FoldedModel`, the program (its train step,
  each fold's loss, the folds' inputs gathered and augmented inside the step);
* :mod:`~mer_keras.train.vectorized.network`: :class:`FoldedNetwork`, one group's stacked
  variables and each layer translated into its fold-stacked op;
* :mod:`~mer_keras.train.vectorized.graph`: the template's layer graph (parallel branches fused
  into one convolution, convolutions whose bias and ReLU move after their max pooling);
* :mod:`~mer_keras.train.vectorized.support`: whether the engine can run a model here (the
  layers it translates, the grouped-convolution probe).
"""
