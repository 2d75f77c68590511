/**
 * @file A convolutional autoencoder for MNIST: a Conv2D + MaxPooling2D encoder squeezes each digit to
 * 7x7x8 values, a Conv2DTranspose + UpSampling2D decoder draws it again. It trains to reproduce its
 * input, which this file declares with `export const target = 'input'`; `dlc train` then feeds each
 * digit as its own target and reports the reconstruction loss on the test digits:
 *
 *   npx dlc train examples/mnist-autoencoder.ts --epochs 3 --png reconstructions.png
 *
 * writes test digits beside their reconstructions to reconstructions.png.
 */
import { Conv2D, Conv2DTranspose, Input, MaxPooling2D, Model, UpSampling2D } from 'dlc';

const digits = Input({ shape: [28, 28, 1], name: 'digits' });
let h = Conv2D(16, 3, { activation: 'relu', padding: 'same' }).apply(digits);
h = MaxPooling2D(2).apply(h); // 14x14x16
h = Conv2D(8, 3, { activation: 'relu', padding: 'same' }).apply(h);
const code = MaxPooling2D(2, { name: 'code' }).apply(h); // 7x7x8: 392 numbers for 784 pixels
h = Conv2DTranspose(8, 3, { strides: 2, activation: 'relu', padding: 'same' }).apply(code); // 14x14x8
h = UpSampling2D(2).apply(h); // 28x28x8
h = Conv2D(16, 3, { activation: 'relu', padding: 'same' }).apply(h);
const reconstruction = Conv2D(1, 3, { activation: 'sigmoid', padding: 'same', name: 'reconstruction' }).apply(h);

export const model = Model({ inputs: digits, outputs: reconstruction, name: 'mnist_autoencoder' });
model.compile({ optimizer: 'adam', loss: 'binary_crossentropy' });
/** Train against the input itself, not the labels. */
export const target = 'input';
export default model;
