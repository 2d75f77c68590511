/**
 * @file An LSTM reads each MNIST digit as a sequence: 28 time steps, one row of 28 pixels each, then
 * a softmax over the last hidden state. The LSTM compiles to one loop for the forward pass and one
 * for the backward pass, whatever the sequence length:
 *
 *   npx dlc train examples/mnist-lstm.ts --epochs 1
 *   npx dlc ir examples/mnist-lstm.ts --after fuse     # the two loops in the kernel program
 */
import { Dense, LSTM, Sequential } from 'dlc';

export const model = Sequential(
  [
    LSTM(128, { inputShape: [28, 28] }),
    Dense(10, { activation: 'softmax' }),
  ],
  { name: 'mnist_lstm' },
);
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
export default model;
