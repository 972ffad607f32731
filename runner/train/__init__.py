"""Training without Ray: the loop and the pack loop over one set-up (loop.open_session), the
sample-quality meter, TensorBoard and PNG logging, the tensors batches come from, and pictures
from a checkpoint (sample). runner.sweep drives it under Tune; a test or a notebook can call
loop.train directly."""
