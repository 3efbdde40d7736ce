"""The 75 questions of the guide, each with ember's own answer.

The answers are written for ember (not copied from the guide): short, correct, and where the guide
is vague or dated they say what practice looks like today. Experiments that demonstrate a claim
live in ``ember.guide.experiments`` and are looked up by question number.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTS = {
    1: "Foundations",
    2: "CNNs for image data",
    3: "RNNs and LSTMs for sequences",
    4: "Optimization and training",
}


@dataclass(frozen=True)
class Question:
    number: int
    part: int
    title: str
    answer: str

    @property
    def anchor(self) -> str:
        return f"q{self.number}"


def _part(n: int) -> int:
    return 1 if n <= 17 else 2 if n <= 41 else 3 if n <= 52 else 4


_ANSWERS: dict[int, tuple[str, str]] = {
    1: (
        "What is deep learning?",
        "Deep learning fits functions built from many stacked, differentiable layers to "
        "data by gradient descent. Each layer turns its input into a slightly more useful "
        "representation, so the network learns its own features instead of relying on hand-"
        "made ones. It shines when there is a lot of data with structure (images, audio, "
        "text, sequences): CNNs exploit spatial locality, recurrent networks and "
        "transformers exploit order. In ember every such model is a composition of ops "
        "whose gradients the autograd engine computes.",
    ),
    2: (
        "What is a neural network?",
        "A parametrised function made of layers of simple units. Each unit computes a "
        "weighted sum of its inputs plus a bias and passes it through a non-linear "
        "activation. Layers feed one another from the input to the output; training adjusts"
        " the weights and biases so the output matches targets, measured by a loss. Nothing"
        " about it needs to resemble a brain: it is function approximation with a very "
        "flexible family of functions.",
    ),
    3: (
        "What is a multi-layer perceptron (MLP)?",
        "A feed-forward network of fully connected (Dense) layers: an input, one or more "
        "hidden layers with a non-linear activation, and an output layer. Without the non-"
        "linearity the stack would collapse into one linear map; with it, even one wide "
        "hidden layer can approximate any continuous function on a bounded domain. In "
        "ember: `Sequential([Dense(64, activation='relu'), Dense(10)])`.",
    ),
    4: (
        "What is data normalization and why do we need it?",
        "Rescaling features so they live on comparable scales: min-max to [0, 1] or [-1, "
        "1], or standardisation to zero mean and unit variance using statistics of the "
        "training set only. Gradient descent then sees a better-conditioned loss surface "
        "(no direction a thousand times steeper than another), so a single learning rate "
        "suits every weight, training converges faster, and large raw values cannot "
        "saturate activations or blow up gradients. The experiment trains the same model on"
        " raw and on standardised features.",
    ),
    5: (
        "What is a Boltzmann machine?",
        "An energy-based generative model of binary units: a configuration's probability is"
        " proportional to exp(-energy), and the energy is a sum of pairwise weights and "
        "biases. Fully connected Boltzmann machines are impractical to train; the "
        "restricted version (RBM) has only visible-hidden connections, so each layer is "
        "conditionally independent given the other and Gibbs sampling is cheap. RBMs are "
        "trained with contrastive divergence and were once used to pre-train deep belief "
        "networks layer by layer; today they are mostly of historical and teaching "
        "interest. ember.models.RBM implements CD-k and persistent CD.",
    ),
    6: (
        "What is the role of activation functions in a neural network?",
        "They make the network non-linear. A stack of linear layers is still one linear "
        "map, however deep, so without activations a network can only draw straight "
        "decision boundaries. The activation's shape also governs how gradients flow: "
        "saturating functions (sigmoid, tanh) squash gradients towards zero, while ReLU-"
        "like functions pass them unchanged for positive inputs.",
    ),
    7: (
        "What is the cost function?",
        "A single number that says how wrong the model is on the data, chosen so that "
        "lowering it means better predictions: mean squared error for regression, cross-"
        "entropy for classification (the negative log-likelihood of the true class). "
        "Training is the search for the weights that minimise it; it must be differentiable"
        " (almost everywhere) for gradient descent to apply.",
    ),
    8: (
        "What is gradient descent?",
        "An iterative way to minimise a differentiable function: compute the gradient at "
        "the current weights and take a small step against it, w <- w - lr * grad. The "
        "gradient points uphill most steeply, so the step goes downhill. The learning rate "
        "sets the step size; in deep learning the gradient is estimated on mini-batches. "
        "The experiment draws the path of plain and momentum descent on a 2-D loss surface.",
    ),
    9: (
        "What do you understand by backpropagation?",
        "The algorithm that computes the gradient of the loss with respect to every weight "
        "in one backward sweep. The forward pass records each operation; the backward pass "
        "visits them in reverse and applies the chain rule, multiplying each op's local "
        "derivative by the gradient arriving from above. Its cost is a small constant times"
        " the forward pass. ember's autograd engine does exactly this, iteratively, over a "
        "graph of Function nodes.",
    ),
    10: (
        "What is the difference between a feed-forward neural network and a recurrent "
        "neural network?",
        "A feed-forward network maps one input to one output through a fixed stack of "
        "layers, with no loops and no memory between examples. A recurrent network "
        "processes a sequence step by step and carries a hidden state from one step to the "
        "next, applying the same weights at every step, so its output can depend on "
        "everything seen so far and it handles sequences of any length.",
    ),
    11: (
        "What are the applications of a recurrent neural network (RNN)?",
        "Anything sequential: language modelling and text classification, speech "
        "recognition, machine translation (encoder-decoder), time-series forecasting, music"
        " and handwriting generation, event streams. Since 2018 transformers have replaced "
        "RNNs in most large language tasks, but LSTMs and GRUs remain strong, cheap choices"
        " for small data, streaming inputs and on-device models.",
    ),
    12: (
        "What are the softmax and ReLU functions?",
        "ReLU(x) = max(0, x): cheap, non-saturating for positive inputs, the default hidden"
        " activation. Softmax turns a vector of scores into probabilities: exp(z_i) / sum_j"
        " exp(z_j), each in (0, 1) and summing to 1; it is used on the output of a multi-"
        "class classifier. In practice the softmax is fused with the cross-entropy loss (as"
        " ember's from_logits=True losses do) because that is cheaper and numerically "
        "stable.",
    ),
    13: (
        "What are hyperparameters?",
        "Settings chosen before training rather than learned by it: learning rate and its "
        "schedule, batch size, number of epochs, depth and width, activation, optimizer and"
        " its constants, dropout rate, weight decay, augmentation strength. They are picked"
        " by validation performance, by hand or by search (grid, random, Bayesian).",
    ),
    14: (
        "What will happen if the learning rate is set too low or too high?",
        "Too low: every step is tiny, the loss creeps down, training needs far more epochs "
        "and may stall on plateaus. Too high: steps overshoot the valley floor, the loss "
        "oscillates or grows, and can diverge to inf/NaN. A learning-rate range test "
        "(ember's model.lr_find) or a schedule that warms up and decays helps find the "
        "working range. The experiment trains one model at three rates and checks each "
        "behaviour.",
    ),
    15: (
        "What is dropout and batch normalization?",
        "Dropout zeroes a random fraction of activations at each training step and scales "
        "the survivors by 1/(1-rate) (inverted dropout), so no unit can rely on a "
        "particular other one; at inference it does nothing. Batch normalization "
        "standardises each channel with the mini-batch's mean and variance, then applies a "
        "learned scale and shift; at inference it uses running averages of those "
        "statistics. Dropout regularises; batch norm mainly makes optimisation easier and "
        "tolerant of larger learning rates.",
    ),
    16: (
        "What is the difference between batch gradient descent and stochastic gradient descent?",
        "Batch gradient descent uses the whole training set for each update: exact "
        "gradient, one step per epoch, expensive per step. Stochastic gradient descent uses"
        " one example per update: very noisy but many cheap steps. Mini-batch descent "
        "(32-512 examples) sits between them and is what everyone uses: vectorised hardware"
        " processes a batch almost as fast as one example, and the noise left is even "
        "mildly helpful for generalisation.",
    ),
    17: (
        "What is overfitting and underfitting, and how to combat them?",
        "Underfitting: the model cannot even fit the training data (high training loss) - "
        "use a bigger model, better features, train longer, lower regularisation. "
        "Overfitting: training loss keeps falling while validation loss turns up - get more"
        " data, augment, add dropout/weight decay, use a smaller model or stop early at the"
        " best validation epoch. ember's diagnose(history) reads the curves and names the "
        "case.",
    ),
    18: (
        "How are weights initialized in a network?",
        "Randomly, with a scale chosen from the layer's fan-in and fan-out so that "
        "activations and gradients keep roughly constant variance from layer to layer; "
        "biases start at zero. Too small a scale makes signals vanish with depth, too large"
        " makes them explode, and identical values make all units learn the same thing.",
    ),
    19: (
        "What are the different methods to initialize the weights?",
        "Zeros (only for biases: it leaves units symmetric), constant, small random "
        "normal/uniform (scale must be tuned by hand), Glorot/Xavier (variance 2/(fan_in + "
        "fan_out), suited to tanh/sigmoid), He (variance 2/fan_in, suited to ReLU), LeCun "
        "(variance 1/fan_in, for SELU), and orthogonal (good for recurrent weights). Keras "
        "defaults to Glorot uniform for Dense and Conv kernels and orthogonal for recurrent"
        " ones; ember follows it.",
    ),
    20: (
        "What are the different layers on CNN?",
        "Convolution layers (learned filters slid over the image), a non-linearity after "
        "each, pooling layers that downsample, often batch normalisation, and at the end a "
        "head: flatten + dense layers, or global average pooling + one dense layer, "
        "producing class scores. Modern CNNs add residual connections around blocks of "
        "convolutions.",
    ),
    21: (
        "What is pooling on CNN, and how does it work?",
        "A fixed (not learned) downsampling: a window slides over each channel and outputs "
        "one number per position - the maximum (max pooling) or the mean (average pooling)."
        " With a 2x2 window and stride 2 the height and width halve. It cuts computation, "
        "enlarges the receptive field of later layers and makes the output tolerant to "
        "small shifts.",
    ),
    22: (
        "What is convolution in CNN?",
        "A learned filter (a small kh x kw x channels array) is slid over the input; at "
        "each position the filter and the patch under it are multiplied elementwise and "
        "summed, giving one output value. Every position uses the same weights, so a filter"
        " detects the same pattern anywhere. Strictly, deep-learning libraries compute "
        "cross-correlation (the filter is not flipped), which makes no difference to what "
        "can be learned. ember computes it as one matrix product over a patch view of the "
        "input.",
    ),
    23: (
        "How does an LSTM network work?",
        "An LSTM keeps two states: a cell state c (long-term memory) and a hidden state h "
        "(the output). At each step three sigmoid gates computed from x_t and h_{t-1} "
        "decide how much of c to keep (forget gate f), how much of a new tanh candidate to "
        "write (input gate i), and how much of tanh(c) to expose (output gate o): c_t = "
        "f*c_{t-1} + i*g, h_t = o*tanh(c_t). Because c is updated additively, gradients can"
        " flow through many steps without vanishing.",
    ),
    24: (
        "What are vanishing and exploding gradients?",
        "Backpropagation multiplies one Jacobian per layer (or per time step). If those "
        "factors are mostly smaller than one the gradient shrinks exponentially with depth "
        "and early layers stop learning (vanishing); if larger than one it grows "
        "exponentially and updates blow up (exploding). Remedies: ReLU-family activations, "
        "careful initialisation, normalisation, residual connections, gated RNNs, and "
        "gradient clipping. The experiment prints per-layer gradient norms for sigmoid vs "
        "ReLU nets and RNN vs LSTM.",
    ),
    25: (
        "What is the difference between epoch, batch, and iteration in deep learning?",
        "An epoch is one pass over the whole training set. A batch is the subset of "
        "examples used for one gradient estimate. An iteration (step) is one weight update,"
        " i.e. one batch. With 2,000 examples and batch size 100, one epoch is 20 "
        "iterations (the last batch is smaller when the size does not divide).",
    ),
    26: (
        "Why is TensorFlow the most preferred library in deep learning?",
        "It no longer is, for most new work. TensorFlow with Keras was dominant around "
        "2016-2019 thanks to its deployment tools (TF Serving, TF Lite, TFX) and "
        "TensorBoard. Since then PyTorch has become the default in research and most "
        "industry (eager execution, simpler debugging), JAX is popular for large-scale "
        "research, and Keras 3 runs on all three backends. Choose by ecosystem and "
        "deployment target. ember borrows Keras's API and PyTorch's autograd semantics, and"
        " serves models over HTTP in TF Serving's JSON format.",
    ),
    27: (
        "What do you mean by tensor in TensorFlow?",
        "A tensor is an n-dimensional array with a shape and a dtype: a scalar has rank 0, "
        "a vector rank 1, a batch of RGB images rank 4 (batch, height, width, channels). In"
        " TensorFlow, PyTorch and ember the tensor also records the operations that "
        "produced it, which is what lets the framework compute gradients automatically.",
    ),
    28: (
        "What is the difference between SAME and VALID padding in TensorFlow?",
        "VALID adds no padding: the output has size ceil((n - k + 1) / s) and shrinks. SAME"
        " pads with zeros so the output has size ceil(n / s) - equal to the input at stride"
        " 1. The total padding is max((ceil(n/s) - 1)*s + k - n, 0); when it is odd "
        "TensorFlow puts the extra row/column at the bottom/right. ember's Conv2D.explain "
        "prints the exact pads.",
    ),
    29: (
        "What is the Swish function?",
        "swish(x) = x * sigmoid(beta * x), found by an automated search at Google (2017). "
        "It is smooth and non-monotonic (it dips slightly below zero for negative x). With "
        "beta = 1 it is also called SiLU; as beta grows it approaches ReLU and at beta = 0 "
        "it is x/2. It often gives small gains over ReLU in deep networks at a little extra"
        " cost.",
    ),
    30: (
        "What are the reasons for mini-batch gradient being so useful?",
        "A batch turns many vector operations into matrix products that run near peak speed"
        " on CPUs and GPUs; the gradient's noise falls with the square root of the batch "
        "size, so updates are stable enough; memory holds only one batch of activations; "
        "and the remaining noise helps escape sharp minima. It gives many updates per "
        "epoch, unlike full batch descent.",
    ),
    31: (
        "What do you understand by Leaky ReLU activation function?",
        "leaky_relu(x) = x for x > 0 and a*x otherwise, with a small slope a (0.01 for "
        "ember's LeakyReLU layer and PyTorch; Keras's layer uses 0.3, and the leaky_relu "
        "functions of Keras and ember 0.2). Negative inputs still pass a small "
        "gradient, so a unit whose pre-activation became negative everywhere can still "
        "recover - unlike plain ReLU, whose gradient there is exactly zero. PReLU learns "
        "the slope.",
    ),
    32: (
        "What is data augmentation in deep learning?",
        "Creating new training examples by applying label-preserving random transformations"
        " to existing ones: flips, rotations, shifts, zooms, crops, brightness and contrast"
        " changes for images; noise or time stretching for audio; synonym swaps for text. "
        "The model sees a different variant each epoch, which reduces overfitting and "
        "builds invariance to those changes. Augmentation is only applied while training.",
    ),
    33: (
        "How to handle imbalanced data set for image classification?",
        "Weight the loss by inverse class frequency (class_weight='balanced'); resample - "
        "oversample the minority (plain duplication, SMOTE interpolation, or heavier "
        "augmentation) or undersample the majority; adjust the decision threshold; and "
        "measure with recall, precision, F1 or AUC per class rather than accuracy, which a "
        "model can maximise by always predicting the majority. The experiment compares "
        "these strategies.",
    ),
    34: (
        "How to load large volumes of images for CNN model with low RAM memory?",
        "Stream them: keep only file paths in memory and decode, resize and augment one "
        "batch at a time, ideally in background workers so loading overlaps training. "
        "Keras's ImageDataGenerator/flow_from_directory and tf.data, PyTorch's DataLoader, "
        "and ember's DataLoader and flow_from_directory all work this way. The experiment "
        "measures peak memory of streaming versus loading everything.",
    ),
    35: (
        "How do flow_from_directory functions work to load the data?",
        "You point it at a folder with one subfolder per class. It lists the subfolders in "
        "alphanumeric order to build class_indices (name -> index), collects the image "
        "files in each, and returns an iterator that, per batch, reads the files, converts "
        "and resizes them to target_size, applies the generator's rescaling and "
        "augmentation, and yields (images, labels) with labels encoded per class_mode "
        "(categorical one-hot, binary, sparse ints, or none). validation_split with subset "
        "splits each class the same way.",
    ),
    36: (
        "Why is image normalization important?",
        "Raw pixels are 0-255; feeding them directly gives large pre-activations, saturated"
        " units and a badly conditioned loss. Scaling to [0, 1] or [-1, 1], or "
        "standardising per channel, keeps activations in the range the initialisers assume,"
        " so training is faster and stable. Use the training set's statistics for the test "
        "set too.",
    ),
    37: (
        "What is an encoder?",
        "The part of a network that maps an input to a compact representation (a latent "
        "vector or a sequence of them). An autoencoder trains an encoder together with a "
        "decoder that reconstructs the input from the latent, so the latent must keep the "
        "information that matters; in sequence-to-sequence models the encoder summarises "
        "the source sequence for the decoder. ember.models.Autoencoder exposes its encoder "
        "on its own.",
    ),
    38: (
        "Explain dropout with an example in layman's terms.",
        "Think of a football team that trains with a few random players benched every "
        "session. Nobody can rely on the star striker always being there, so every player "
        "learns to cover for the others and the team plays well whoever is on the pitch. On"
        " match day everyone plays. Dropout benches random neurons during training and uses"
        " all of them, suitably scaled, at prediction time.",
    ),
    39: (
        "Why is a ReLU activation function used after a convolution layer in a CNN?",
        "A convolution is linear, so stacking them without a non-linearity would still be "
        "one linear filter. ReLU adds non-linearity at almost no cost, keeps gradients at 1"
        " for active units (no saturation), and produces sparse feature maps. Leaky ReLU, "
        "ELU, GELU or Swish are common alternatives.",
    ),
    40: (
        "What is the use of max pooling in a CNN?",
        "It downsamples each feature map by keeping the strongest response in each window: "
        "it reduces computation and memory for later layers, grows their receptive field, "
        "and makes the output insensitive to small translations of a feature within a "
        "window. It has no weights. Strided convolutions are a learned alternative.",
    ),
    41: (
        "What is the difference between using ANN and CNN for image classification?",
        "A dense network flattens the image, so it ignores which pixels are neighbours and "
        "needs a separate weight for every pixel-unit pair: many parameters, no built-in "
        "translation tolerance. A CNN uses small shared filters over local patches, so it "
        "has far fewer parameters, recognises a feature wherever it appears, and builds a "
        "hierarchy from edges to objects. With equal parameter budgets the CNN wins on "
        "images, as the experiment shows.",
    ),
    42: (
        "What are the problems with RNN architecture and how to resolve them?",
        "Gradients through time are products of one Jacobian per step, so they vanish (no "
        "long-range memory) or explode (unstable updates); training is also sequential and "
        "hard to parallelise. Fixes: gated cells (LSTM, GRU) for vanishing gradients, "
        "gradient clipping for exploding ones, truncated backpropagation through time for "
        "long sequences, and for long-range modelling at scale, attention/transformers.",
    ),
    43: (
        "What is gradient clipping?",
        "Limiting the gradient before the update. Clipping by norm rescales the gradient to"
        " norm c when its norm exceeds c (direction kept); clipping by global norm does "
        "that over all weights together; clipping by value caps each element to [-c, c]. It"
        " prevents a single exploding gradient from wrecking the weights, and is standard "
        "for RNNs. ember's optimizers take clipnorm, global_clipnorm and clipvalue.",
    ),
    44: (
        "How do we prepare text data for text classification in an RNN and LSTM network?",
        "Standardise (lowercase, strip punctuation, optionally drop stop words), tokenise "
        "into words or sub-words, build a vocabulary from the training texts (with an out-"
        "of-vocabulary token and padding index 0), map tokens to integer ids, pad or "
        "truncate every sequence to one length (and mask the padding), then feed the ids to"
        " an Embedding layer, trained from scratch or initialised with GloVe/word2vec "
        "vectors. ember.data.text does each step.",
    ),
    45: (
        "Explain the Adam optimization algorithm.",
        "Adam keeps two running averages per weight: m, of the gradient (momentum), and v, "
        "of the squared gradient (a per-weight scale, as in RMSprop). Both start at zero, "
        "so they are bias-corrected by 1 - beta^t. The update is w -= lr * m_hat / "
        "(sqrt(v_hat) + eps), with defaults beta1 = 0.9, beta2 = 0.999. Each weight gets "
        "its own effective step size, which makes Adam robust to poorly scaled problems; "
        "AdamW adds decoupled weight decay.",
    ),
    46: (
        "Why is a convolutional neural network preferred over a dense neural network for "
        "an image classification task?",
        "Locality (a unit sees a small neighbourhood, matching how image structure works), "
        "weight sharing (one filter for every position, so orders of magnitude fewer "
        "parameters and less overfitting), translation equivariance plus pooling for "
        "tolerance to position, and a feature hierarchy through depth. A dense net must "
        "learn each of these from data.",
    ),
    47: (
        "Which strategy does not prevent a model from over-fitting to the training data?",
        "Training longer. More epochs let the model memorise noise in the training set; "
        "validation loss eventually rises. What does help: more or augmented data, dropout,"
        " weight decay, smaller models, and early stopping at the best validation epoch.",
    ),
    48: (
        "Why is a deep neural network better than a shallow neural network?",
        "Depth composes features: each layer builds on the previous one's, so functions "
        "with hierarchical structure can be represented with far fewer units than a single "
        "wide layer would need (some need exponentially many when shallow). Deep nets are "
        "harder to train, which is why initialisation, normalisation and residual "
        "connections matter. At an equal parameter budget the experiment compares a deep "
        "and a shallow network.",
    ),
    49: (
        "Explain two ways to deal with the vanishing gradient problem in a deep neural network.",
        "1) Use non-saturating activations (ReLU and its variants) with matched "
        "initialisation (He), so each layer's local derivative is about 1 instead of at "
        "most 0.25 as with the sigmoid. 2) Give the gradient a short path: residual "
        "connections in deep feed-forward nets, or the additive cell state of LSTM/GRU in "
        "recurrent nets. Batch normalisation also helps by keeping pre-activations in a "
        "well-behaved range.",
    ),
    50: (
        "What is the need to add randomness in the weight initialization process?",
        "To break symmetry. If all weights of a layer start equal, every unit computes the "
        "same output and receives the same gradient, so they stay identical forever and the"
        " layer behaves like a single unit. Random starting values make units differ from "
        "the first step; the scale of the randomness is then set by the initialisation "
        "scheme.",
    ),
    51: (
        "How can you train hyperparameters in a neural network?",
        "They are tuned, not trained: define a search space, train a model per "
        "configuration, and compare a validation metric. Grid search tries every "
        "combination (cost multiplies with each dimension), random search samples the space"
        " (better when few parameters matter), Bayesian optimisation (e.g. TPE, Gaussian "
        "processes) models the objective to pick promising trials, and pruning stops bad "
        "trials early. ember.tuning runs all three on Optuna.",
    ),
    52: (
        "What is the difference between LSTM and RNN?",
        "A simple RNN updates its hidden state as h_t = tanh(W x_t + U h_{t-1} + b): one "
        "multiplicative path, so gradients vanish after a few dozen steps. An LSTM adds a "
        "cell state updated additively and three gates that learn when to keep, write and "
        "read it, which preserves information and gradients over hundreds of steps at four "
        "times the parameters. The experiment trains both on a long-range memory task.",
    ),
    53: (
        "What are the different types of optimizers?",
        "SGD (plain steps along the negative gradient), SGD with momentum or Nesterov "
        "momentum (a velocity that smooths and accelerates), Adagrad (per-weight steps "
        "shrinking with the sum of past squared gradients, good for sparse features), "
        "RMSprop (the same with a moving average, so steps do not die out), Adam (momentum "
        "plus RMSprop scaling with bias correction) and AdamW (Adam with decoupled weight "
        "decay). ember has all of them with Keras 3's exact update rules.",
    ),
    54: (
        "What is the difference between cost function and loss function?",
        "Usage varies, but commonly the loss is the error on one example and the cost is "
        "the average (plus any regularisation terms) over a batch or the whole training set"
        " - the number the optimiser actually minimises. ember's losses compute per-example"
        " values and reduce them to the batch mean.",
    ),
    55: (
        "What are weights in a CNN?",
        "The filter values of the convolution layers - a kernel of shape (kh, kw, "
        "in_channels, filters) - plus one bias per filter, and the weights of the dense "
        "head. Each filter is shared across all positions, so a 3x3 convolution from 32 to "
        "64 channels has only 3*3*32*64 + 64 = 18,496 parameters, whatever the image size.",
    ),
    56: (
        "Why is a dense layer required in a CNN architecture?",
        "It is not strictly required. The convolutional part produces feature maps; "
        "something must map them to the output classes. Traditionally that is flatten + "
        "dense layers; the final dense layer (or a 1x1 convolution) is still needed to "
        "produce one score per class, but it can be small when preceded by global average "
        "pooling.",
    ),
    57: (
        "What if a dense layer is not used in a CNN?",
        "You can end with global average pooling: average each of the last feature maps to "
        "one number and feed that vector to a softmax (directly if the last convolution has"
        " one map per class, or through a single small dense layer). This removes most "
        "parameters of the classic flatten + dense head, reduces overfitting and accepts "
        "any input size. The experiment counts parameters for both heads.",
    ),
    58: (
        "What are callbacks?",
        "Objects the training loop calls at fixed points (start/end of training, each "
        "epoch, each batch) with the current logs, so behaviour can be added without "
        "changing the loop: saving checkpoints, early stopping, changing the learning rate,"
        " logging to CSV or TensorBoard, stopping on NaN, resuming after a crash. ember's "
        "fit loop talks to callbacks only through a dict of floats.",
    ),
    59: (
        "How to evaluate model training?",
        "Hold out validation data and watch the training and validation curves of the loss "
        "and of the metric you care about. Both high and flat: underfitting. Training "
        "falling while validation turns upward: overfitting (the turning point is where to "
        "stop). Both low and close: a good fit. Finally report the metric once on an "
        "untouched test set, with class-aware metrics when classes are imbalanced.",
    ),
    60: (
        "How to select an activation function in a CNN and ANN?",
        "Hidden layers: ReLU first; Leaky ReLU, ELU, GELU or Swish if units die or for a "
        "small gain; tanh/sigmoid mostly inside gates. Output layer by task: linear for "
        "regression, sigmoid for binary or multi-label, softmax for one-of-K (or output "
        "logits and use a from_logits loss, which is more stable).",
    ),
    61: (
        "What is the problem of a dead neuron and how to resolve it?",
        "A ReLU unit whose pre-activation is negative for every input outputs 0 and gets 0 "
        "gradient, so it never recovers - typically after a too-large update or a large "
        "negative bias. Remedies: lower learning rate, He initialisation, batch "
        "normalisation, or activations with a non-zero negative slope (Leaky ReLU, PReLU, "
        "ELU). ember's DeadNeuronMonitor counts such units; the experiment shows Leaky ReLU"
        " reviving them.",
    ),
    62: (
        "What is the role of weights and bias in a neural network?",
        "Weights scale each input's contribution to a unit: they set which input patterns "
        "the unit responds to. The bias shifts the unit's threshold, letting it fire (or "
        "not) even when all inputs are zero - geometrically it moves the decision boundary "
        "away from the origin. Both are learned.",
    ),
    63: (
        "How does forward propagation and backpropagation work in deep learning?",
        "Forward: the input passes through each layer in turn, each computing its output "
        "from the previous one, up to the prediction and the loss; the framework records "
        "the operations. Backward: starting from dLoss/dLoss = 1, each recorded operation, "
        "in reverse order, turns the gradient of its output into gradients of its inputs "
        "and weights (chain rule). The optimizer then updates the weights. The experiment "
        "checks ember's analytic gradients against finite differences.",
    ),
    64: (
        "How do we initialize the weights?",
        "Pick the scheme matching the activation: He (variance 2/fan_in) for ReLU-family, "
        "Glorot (2/(fan_in + fan_out)) for tanh/sigmoid/linear, LeCun (1/fan_in) for SELU, "
        "orthogonal for recurrent matrices; biases at zero (LSTM forget-gate bias at one). "
        "The experiment shows activation statistics per layer of a deep net under each "
        "scheme.",
    ),
    65: (
        "What is the chain rule of differentiation?",
        "For a composition z = f(g(x)), dz/dx = f'(g(x)) * g'(x): derivatives of nested "
        "functions multiply. With several variables the products become Jacobian products "
        "and paths that fork add up. Backpropagation is the chain rule evaluated from the "
        "output backwards so that each intermediate gradient is computed once.",
    ),
    66: (
        "What is the hidden state in an RNN?",
        "The vector h_t that the network carries from one time step to the next: computed "
        "from the current input and the previous hidden state, it summarises what the "
        "network has seen so far and is both the step's output and the next step's memory. "
        "LSTMs keep a second state, the cell state.",
    ),
    67: (
        "What are the different gates in an LSTM?",
        "The input gate (how much of the new candidate to write into the cell), the forget "
        "gate (how much of the old cell state to keep), and the output gate (how much of "
        "the squashed cell state to emit as the hidden state). Each is a sigmoid of a "
        "linear function of x_t and h_{t-1}; the candidate itself uses tanh. GRUs merge "
        "these into an update and a reset gate.",
    ),
    68: (
        "Why should we use batch normalization?",
        "It keeps each layer's inputs standardised during training, which makes the loss "
        "surface smoother, so higher learning rates work and training needs fewer epochs; "
        "it reduces sensitivity to initialisation; and batch-to-batch noise in the "
        "statistics regularises mildly. Mind its quirks: small batches give noisy "
        "statistics, and train/inference behaviour differ (frozen layers should use the "
        "moving statistics).",
    ),
    69: (
        "Why does a convolutional neural network (CNN) work better with image data?",
        "Its structure matches images' structure: nearby pixels are strongly related (local"
        " receptive fields), the same pattern can appear anywhere (shared weights, "
        "translation equivariance), and objects are composed of parts (a hierarchy of "
        "layers). These priors mean far fewer parameters to learn and better generalisation"
        " from the same data.",
    ),
    70: (
        "Why do RNNs work better with text data?",
        "Text is a sequence where meaning depends on order and context. An RNN reads it "
        "token by token, updating a state that summarises the context so far, shares its "
        "weights across positions and handles any length. (Transformers, which attend to "
        "all positions at once, now usually do better still on large data.)",
    ),
    71: (
        "How is backpropagation different in an RNN compared to an ANN?",
        "An RNN is unrolled over time into a deep network whose layers share the same "
        "weights; backpropagation through time runs the chain rule backwards over the "
        "steps, carrying the gradient of the hidden state from step t to t-1, and adds up "
        "each step's contribution to the shared weights' gradient. Long sequences make the "
        "product of per-step Jacobians vanish or explode, and cost memory proportional to "
        "the length. ember's fused LSTM/GRU ops write BPTT out as one readable loop.",
    ),
    72: (
        "What is the weight updation formula?",
        "For plain gradient descent, w_new = w - learning_rate * dL/dw. Other optimizers "
        "change what is subtracted: momentum uses a running average of gradients, Adam "
        "divides it by a running root-mean-square, weight decay adds lr * lambda * w.",
    ),
    73: (
        "What is the learning rate?",
        "The multiplier on the gradient in each update, i.e. the step size. It is usually "
        "the most important hyperparameter: too small wastes time, too large diverges. It "
        "is often scheduled: warm-up, then step, exponential or cosine decay, or reduced on"
        " a plateau.",
    ),
    74: (
        "How to fine-tune any deep learning model?",
        "Load a model trained on a large related dataset, replace its task-specific head "
        "with a new one for your classes, freeze the pretrained base and train the head "
        "until it converges, then optionally unfreeze the top of the base and continue with"
        " a learning rate 10-100 times lower. Keep batch normalisation layers of a frozen "
        "base in inference mode. ember.models.transfer provides freeze, unfreeze and "
        "replace_head.",
    ),
    75: (
        "How to train a model on multiple GPUs?",
        "Data parallelism: each device holds a full replica, processes its share of every "
        "batch, and the gradients are averaged (all-reduce) before every update, so "
        "replicas stay identical - MirroredStrategy, PyTorch DDP, Horovod. Model (and "
        "pipeline) parallelism: split the layers across devices and stream micro-batches "
        "through them when the model does not fit on one. ember does both across MPI "
        "processes on CPUs.",
    ),
}

QUESTIONS: list[Question] = [
    Question(n, _part(n), title, answer) for n, (title, answer) in sorted(_ANSWERS.items())
]


def get(number: int) -> Question:
    """The question with this number (1-75)."""
    if not 1 <= int(number) <= len(QUESTIONS):
        from ember.errors import EmberValueError

        raise EmberValueError(f"guide: questions are numbered 1-75, received {number!r}")
    return QUESTIONS[int(number) - 1]
