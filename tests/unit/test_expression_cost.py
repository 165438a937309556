"""The expression cost benchmark's multiply-add count (``bench.expression_cost``) on small networks whose
counts are worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

from bench import expression_cost


def test_multiply_adds_of_convolutions_separable_convolutions_and_dense_layers():
    import keras
    from keras import layers
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same")(inputs)            # 8*8 outputs * 3*3*1 taps * 4 filters = 2,304
    x = layers.Conv2D(2, 3, strides=2, padding="same")(x)      # 4*4 * 3*3*4 * 2 = 1,152
    x = layers.SeparableConv2D(3, 3, padding="same")(x)        # 4*4 * (3*3*2 + 2*3) = 384
    x = layers.BatchNormalization()(x)                         # not counted
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(7)(x)                               # 3*7 = 21
    model = keras.Model(inputs, outputs)
    assert expression_cost.multiply_adds(model) == 2304 + 1152 + 384 + 21


def test_a_choice_counts_each_network_twice_with_the_mirror_image():
    import keras
    from keras import layers
    inputs = keras.Input((4, 4, 1))
    one = keras.Model(inputs, layers.Dense(7)(layers.Flatten()(inputs)))     # 16 * 7 = 112
    two = SimpleNamespace(_model=one)
    assert expression_cost.choice_multiply_adds(SimpleNamespace(networks=[two], flip=False)) == 112
    assert expression_cost.choice_multiply_adds(SimpleNamespace(networks=[two], flip=True)) == 224
    assert expression_cost.choice_multiply_adds(SimpleNamespace(networks=[two, two], flip=True)) == 448
    # the trio's way: the first network without its mirror image, 112 + 224
    assert expression_cost.choice_multiply_adds(SimpleNamespace(networks=[two, two], flip=True,
                                                                mirrored=(False, True))) == 336
    assert expression_cost.choice_multiply_adds(SimpleNamespace(networks=[two, two], flip=False,
                                                                mirrored=(False, True))) == 224
