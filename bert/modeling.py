"""The BERT encoder, with google-research/bert's API and variable names.

`BertModel` builds the graph with `tf.compat.v1` variable scopes, so a checkpoint released by Google
(or written by google-research/bert's code) loads as it is, and `compute_type` runs the same graph in
float16 or bfloat16: variables stay float32 and are cast where they are used, layer norm and the
attention softmax run in float32, and every output is returned in float32.
"""
import copy
import json
import math

import tensorflow as tf

from bert import files
from bert.errors import UserInputError

tf1 = tf.compat.v1


def gelu(x):
    """GELU, tanh approximation: what google-research/bert's modeling.py computes for "gelu"."""
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + tf.tanh(c * (x + 0.044715 * tf.pow(x, 3))))


def gelu_exact(x):
    """GELU through erf: what Hugging Face computes for "gelu"."""
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


# Names as they appear in bert_config.json. Hugging Face's "gelu" is the exact form; the converter
# maps it to "gelu_exact" (and our "gelu" to Hugging Face's "gelu_new"), so both sides stay exact.
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": gelu,
    "gelu_exact": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "swish": tf.nn.silu,
    "silu": tf.nn.silu,
    "linear": None,
}


def get_activation(name):
    """Returns the activation function called `name` in a config ("linear" gives None)."""
    if name is None:
        return None
    if callable(name):
        return name
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise UserInputError(f"unknown hidden_act {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]


class BertConfig:
    """Hyper-parameters of a BertModel, read from and written to Google's bert_config.json."""

    def __init__(self,
                 vocab_size,
                 hidden_size=768,
                 num_hidden_layers=12,
                 num_attention_heads=12,
                 intermediate_size=3072,
                 hidden_act="gelu",
                 hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1,
                 max_position_embeddings=512,
                 type_vocab_size=16,
                 initializer_range=0.02,
                 layer_norm_eps=1e-12,
                 **extra):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        # Keys this code does not use (Google's Chinese config has pooler_fc_size, directionality, ...)
        # are kept so that a config survives a round trip unchanged.
        for key, value in extra.items():
            setattr(self, key, value)
        self.validate()

    def validate(self):
        """Raises UserInputError for a config no model can be built from."""
        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads:
            raise UserInputError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise UserInputError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UserInputError(f"{name} must be a positive number, got {value!r}")
        get_activation(self.hidden_act)

    @property
    def size_per_head(self):
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, json_object):
        if not isinstance(json_object, dict):
            raise UserInputError(f"a BERT config must be a JSON object, got {type(json_object).__name__}")
        if "vocab_size" not in json_object:
            raise UserInputError("a BERT config needs vocab_size")
        return cls(**json_object)

    @classmethod
    def from_json_file(cls, json_file):
        data = files.read_json(json_file, "config file")
        try:
            return cls.from_dict(data)
        except UserInputError as error:
            raise UserInputError(f"{json_file}: {error}") from None

    def to_dict(self):
        return copy.deepcopy(self.__dict__)

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file):
        """Writes the config atomically (a temporary file renamed into place)."""
        files.write_text_atomic(json_file, self.to_json_string())


_DTYPES = {"float32": tf.float32, "fp32": tf.float32,
           "float16": tf.float16, "fp16": tf.float16,
           "bfloat16": tf.bfloat16, "bf16": tf.bfloat16}


def as_compute_dtype(dtype):
    """Accepts a tf.DType or one of "float32"/"fp32", "float16"/"fp16", "bfloat16"/"bf16"."""
    if isinstance(dtype, tf.DType):
        if dtype in (tf.float32, tf.float16, tf.bfloat16):
            return dtype
    elif str(dtype).lower() in _DTYPES:
        return _DTYPES[str(dtype).lower()]
    raise UserInputError(f"compute type must be float32, float16 or bfloat16, got {dtype!r}")


class BertModel:
    """BERT encoder (google-research/bert's BertModel, plus a compute dtype).

    Example (graph mode):
      model = BertModel(config, is_training=False, input_ids=ids, input_mask=mask, token_type_ids=seg)
      pooled = model.get_pooled_output()  # [batch, hidden], float32
    """

    def __init__(self,
                 config,
                 is_training,
                 input_ids,
                 input_mask=None,
                 token_type_ids=None,
                 use_one_hot_embeddings=False,
                 scope=None,
                 compute_type=tf.float32):
        """Builds the encoder.

        Args:
          config: BertConfig.
          is_training: False turns dropout off.
          input_ids: int32 [batch, seq] token ids.
          input_mask: int32 [batch, seq], 1 for real tokens and 0 for padding (default all ones).
          token_type_ids: int32 [batch, seq] segment ids (default all zeros).
          use_one_hot_embeddings: look up word embeddings by one-hot matmul instead of a gather.
          scope: variable scope, "bert" by default.
          compute_type: float32, float16 or bfloat16 for the matmuls; variables stay float32.
        """
        config = copy.deepcopy(config)
        if not is_training:
            config.hidden_dropout_prob = 0.0
            config.attention_probs_dropout_prob = 0.0
        self.config = config
        self.compute_type = as_compute_dtype(compute_type)

        batch_size, seq_length = get_shape_list(input_ids, expected_rank=2)
        if isinstance(seq_length, int) and seq_length > config.max_position_embeddings:
            raise UserInputError(
                f"sequence length {seq_length} exceeds max_position_embeddings "
                f"{config.max_position_embeddings} of the model config")
        if input_mask is None:
            input_mask = tf.ones([batch_size, seq_length], dtype=tf.int32)
        if token_type_ids is None:
            token_type_ids = tf.zeros([batch_size, seq_length], dtype=tf.int32)

        # A named scope (not default_name) so that a second model under reuse=True shares "bert/...".
        with tf1.variable_scope(scope or "bert"):
            with tf1.variable_scope("embeddings"):
                self.embedding_table = tf1.get_variable(
                    "word_embeddings", [config.vocab_size, config.hidden_size],
                    initializer=create_initializer(config.initializer_range))
                embedding_output = embed(input_ids, token_type_ids, self.embedding_table, config,
                                         use_one_hot_embeddings)  # [batch, seq, hidden] float32
            self.embedding_output = embedding_output
            hidden = tf.cast(embedding_output, self.compute_type)

            with tf1.variable_scope("encoder"):
                attention_bias = attention_bias_from_mask(input_mask)  # [batch, 1, 1, seq]
                layers = transformer_stack(hidden, attention_bias, config, self.compute_type)
            self.all_encoder_layers = [tf.cast(layer, tf.float32) for layer in layers]
            self.sequence_output = self.all_encoder_layers[-1]

            self.pooled_output = pooler(layers[-1], config, self.compute_type)

    def get_pooled_output(self):
        """float32 [batch, hidden]: tanh(dense(first token's final hidden state))."""
        return self.pooled_output

    def get_sequence_output(self):
        """float32 [batch, seq, hidden]: the final layer's hidden states."""
        return self.sequence_output

    def get_all_encoder_layers(self):
        """List of float32 [batch, seq, hidden], one per transformer layer."""
        return self.all_encoder_layers

    def get_embedding_output(self):
        """float32 [batch, seq, hidden]: word + position + segment embeddings after layer norm."""
        return self.embedding_output

    def get_embedding_table(self):
        """The float32 [vocab, hidden] word embedding variable (the masked-LM output weights)."""
        return self.embedding_table


def pooler(sequence, config, compute_type=tf.float32):
    """BERT's pooled output, float32 [batch, hidden]: tanh(dense(first token's state)) in scope "pooler"
    (under the model's scope)."""
    with tf1.variable_scope("pooler"):
        pooled = dense(sequence[:, 0, :], config.hidden_size, "dense", config.initializer_range, compute_type,
                       activation=tf.tanh)
    return tf.cast(pooled, tf.float32)


def create_initializer(initializer_range=0.02):
    return tf1.truncated_normal_initializer(stddev=initializer_range)


def get_shape_list(tensor, expected_rank=None):
    """The tensor's shape as a list: Python ints where static, scalar tensors where dynamic."""
    static = tensor.shape.as_list()
    if expected_rank is not None and len(static) != expected_rank:
        raise ValueError(f"tensor {tensor.name} has rank {len(static)}, expected {expected_rank}")
    dynamic = tf.shape(tensor)
    return [dim if dim is not None else dynamic[i] for i, dim in enumerate(static)]


def dropout(x, rate):
    if not rate:
        return x
    return tf.nn.dropout(x, rate=rate)


def dense(x, units, name, initializer_range, compute_type, activation=None):
    """x [rows, in] -> [rows, units]; variables `name`/kernel [in, units] and `name`/bias [units]."""
    width = x.shape.as_list()[-1]
    with tf1.variable_scope(name):
        kernel = tf1.get_variable("kernel", [width, units], initializer=create_initializer(initializer_range))
        bias = tf1.get_variable("bias", [units], initializer=tf1.zeros_initializer())
    y = tf.matmul(x, tf.cast(kernel, compute_type)) + tf.cast(bias, compute_type)
    return activation(y) if activation is not None else y


def layer_norm(x, epsilon, name="LayerNorm"):
    """Layer norm over the last axis, computed in float32; returns x's dtype."""
    width = x.shape.as_list()[-1]
    with tf1.variable_scope(name):
        beta = tf1.get_variable("beta", [width], initializer=tf1.zeros_initializer())
        gamma = tf1.get_variable("gamma", [width], initializer=tf1.ones_initializer())
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
    y = (x32 - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta
    return tf.cast(y, x.dtype)


def embed(input_ids, token_type_ids, embedding_table, config, use_one_hot_embeddings=False):
    """Word + segment + position embeddings, layer norm and dropout: float32 [batch, seq, hidden].

    Creates token_type_embeddings, position_embeddings and LayerNorm in the current scope.
    """
    batch_size, seq_length = get_shape_list(input_ids, expected_rank=2)
    width = config.hidden_size
    if use_one_hot_embeddings:
        one_hot = tf.one_hot(tf.reshape(input_ids, [-1]), depth=config.vocab_size)
        words = tf.matmul(one_hot, embedding_table)
    else:
        words = tf.gather(embedding_table, tf.reshape(input_ids, [-1]))
    words = tf.reshape(words, [batch_size, seq_length, width])

    token_type_table = tf1.get_variable(
        "token_type_embeddings", [config.type_vocab_size, width],
        initializer=create_initializer(config.initializer_range))
    # A one-hot matmul: the segment vocabulary is tiny, and this is how Google computes it.
    token_types = tf.matmul(tf.one_hot(tf.reshape(token_type_ids, [-1]), depth=config.type_vocab_size),
                            token_type_table)
    token_types = tf.reshape(token_types, [batch_size, seq_length, width])

    position_table = tf1.get_variable(
        "position_embeddings", [config.max_position_embeddings, width],
        initializer=create_initializer(config.initializer_range))
    positions = tf.slice(position_table, [0, 0], [seq_length, -1])  # [seq, hidden]

    output = words + token_types + positions[tf.newaxis]
    output = layer_norm(output, config.layer_norm_eps)
    return dropout(output, config.hidden_dropout_prob)


def attention_bias_from_mask(input_mask):
    """int [batch, seq] mask -> float32 [batch, 1, 1, seq] bias: 0 to attend, -10000 to ignore."""
    mask = tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    return (1.0 - mask) * -10000.0


def attention(x, attention_bias, batch_size, seq_length, config, compute_type):
    """Multi-head self-attention. x [batch*seq, hidden] -> [batch*seq, hidden] (before output dense).

    Creates query, key and value dense layers in the current scope.
    """
    heads, head_size = config.num_attention_heads, config.size_per_head

    def split_heads(t):  # [batch*seq, hidden] -> [batch, heads, seq, head_size]
        t = tf.reshape(t, [batch_size, seq_length, heads, head_size])
        return tf.transpose(t, [0, 2, 1, 3])

    init = config.initializer_range
    query = split_heads(dense(x, config.hidden_size, "query", init, compute_type))
    key = split_heads(dense(x, config.hidden_size, "key", init, compute_type))
    value = split_heads(dense(x, config.hidden_size, "value", init, compute_type))

    # Scale the query before the product so float16 scores cannot overflow.
    query = query * tf.cast(1.0 / math.sqrt(head_size), compute_type)
    scores = tf.matmul(query, key, transpose_b=True)  # [batch, heads, seq, seq]
    probs = tf.nn.softmax(tf.cast(scores, tf.float32) + attention_bias)  # softmax in float32
    probs = dropout(tf.cast(probs, compute_type), config.attention_probs_dropout_prob)

    context = tf.matmul(probs, value)  # [batch, heads, seq, head_size]
    context = tf.transpose(context, [0, 2, 1, 3])
    return tf.reshape(context, [batch_size * seq_length, config.hidden_size])


def transformer_stack(hidden, attention_bias, config, compute_type, first_layer=0):
    """hidden [batch, seq, hidden] in compute_type -> list of per-layer outputs, same shape and dtype.

    first_layer > 0 runs only layers first_layer.. (hidden is then the output of the layer before it),
    with the same variable names: what few-shot adaptation of the top layers builds on.
    """
    batch_size, seq_length, width = get_shape_list(hidden, expected_rank=3)
    init = config.initializer_range
    activation = get_activation(config.hidden_act)
    x = tf.reshape(hidden, [-1, width])  # [batch*seq, hidden]: every dense works on 2-D input
    outputs = []
    for index in range(first_layer, config.num_hidden_layers):
        with tf1.variable_scope(f"layer_{index}"):
            layer_input = x
            with tf1.variable_scope("attention"):
                with tf1.variable_scope("self"):
                    context = attention(layer_input, attention_bias, batch_size, seq_length, config,
                                        compute_type)
                with tf1.variable_scope("output"):
                    attended = dense(context, width, "dense", init, compute_type)
                    attended = dropout(attended, config.hidden_dropout_prob)
                    attended = layer_norm(attended + layer_input, config.layer_norm_eps)
            with tf1.variable_scope("intermediate"):
                intermediate = dense(attended, config.intermediate_size, "dense", init, compute_type,
                                     activation=activation)
            with tf1.variable_scope("output"):
                out = dense(intermediate, width, "dense", init, compute_type)
                out = dropout(out, config.hidden_dropout_prob)
                x = layer_norm(out + attended, config.layer_norm_eps)
        outputs.append(tf.reshape(x, [batch_size, seq_length, width]))
    return outputs
