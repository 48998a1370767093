"""The MPI message protocols of the distributed methods: named tags, message layouts, who sends what.

Rank 0 is always the server (split learning), aggregator (FedAvg) or parameter server (sync SGD); ranks
1..R hold the K clients or workers, numbered 1..K, in blocks (placement.py; by default K = R, client k on rank
k). A rank runs one of its clients at a time. Below, "k" stands for client k's rank, and every control message
to a client names it: its obj has a "client" field (k), which the rank's handler checks against its own clients. Arrays travel as raw float32/int64 buffers with ``Send``/``Recv``; the small
control messages (marked *obj*) as JSON objects, never pickles: a peer's
message must not be able to run code on the rank that reads it.

Split learning, per epoch, for each client k = 1..N in turn:

    [pass mode]      server -> previous client p   HAND_OVER  obj {"to": k}
                     p -> k   CLIENT_STATE  float32 [client parameters + momentum buffers]
                     (p and k on one rank: a copy there, counted as this message sent and received)
    server -> k      TURN        obj {"epoch", "lr", "receive_from": p in pass mode, else None}
    k -> server      LABELS      int64 [n_k]  the labels of k's whole shard, in the order of this turn's batches
    per batch:  k -> server   SMASHED     float32 [B, C, H, W]  activations at the cut layer (B <= batch size)
                server -> k   CUT_GRAD    float32 [B, C, H, W]  gradient of the loss at the cut layer
    k -> server      TURN_DONE   obj {"bytes_sent", "bytes_received"}  k's rank's traffic this turn, and "work":
                                 what k computed and sent since its last report (work.py)
  then, to evaluate client k's part (the last client's, or every client's; with --evals-per-epoch, also after
  some turns, on the validation images alone):
    server -> k      EVALUATE    obj {"images": n}  the first n evaluation images
    k -> server      SMASHED     float32 [T, C, H, W] per evaluation batch, in order (the held-out validation
                                 images first, with --validation, then the test images);  TURN_DONE as above
  after training, for the saved model (not part of the method):
    server -> k      EXPORT      obj {};   k -> server  UPDATE  float32 [k's client-held parameters]
  and at the end: server -> every client  STOP  obj {}

U-shaped split learning: as vanilla, but no LABELS; per batch
    k -> server  SMASHED  [B, C, H, W];  server -> k  MIDDLE  float32 [B, F] (the activations entering k's head)
    k -> server  HEAD_GRAD  float32 [B, F];  server -> k  CUT_GRAD  [B, C, H, W]
  TURN_DONE carries k's training loss; in evaluation the server answers every SMASHED with MIDDLE and k's
  TURN_DONE carries the test loss and the per-class counts.

SplitFed (V1, V2), per epoch: the server gives TURN to as many clients at once as the cores allow, and the next
one whenever a client's TURN_DONE arrives; each client's LABELS, SMASHED and CUT_GRAD are as in vanilla (the
server takes batches in arrival order); at the end of its turn the client sends UPDATE float32 [its client part]
before TURN_DONE. Once every client is done, server -> every client rank  GLOBAL_MODEL  float32 [the average],
one message a rank, counted once for each of its clients, which all take it.

Every method, after each epoch (round), for its checkpoint (not part of the method, and not counted as traffic):

    server -> every other rank   CHECKPOINT  obj {"epoch"};  each writes its state, then  rank -> server  SAVED  obj {}
  and the server records the epoch as done once every SAVED has come (checkpoint.py).

Any rank, when it fails: rank -> rank 0  FAILED  obj {"error"}, just before it ends the job; rank 0 raises
PeerFailed wherever it waits, and its results file names that rank.

Local-loss split learning: as vanilla without CUT_GRAD: per batch only k -> server SMASHED; a client sends batch
after batch without waiting, and a CUT_GRAD sent to it is a ProtocolError there (it has no handler for one).

With --compress / --compress-grad (every variant), SMASHED and MIDDLE travel coded with the first codec, CUT_GRAD
and HEAD_GRAD with the second: uint8 [B x the codec's bytes a row] (int8/int4: each row's least and greatest
value as float32, then the codes; topk:F: the kept values as float32, then their positions), in place of float32
[B, ...]; without a codec (none) as float32, as above (splitlab/training/codec.py, methods/cut.py).

The server sees nothing of a client's data but cut-layer activations and labels; the server checks every
message against that layout (sender, tag, size) and stops with a ProtocolError on anything else.

FedAvg, per round (MPI mode), for each sampled client k (clients not sampled just wait):

    aggregator -> k    ROUND         obj {"client", "round", "lr"}
    aggregator -> k    GLOBAL_MODEL  float32 [P]  the global model's parameters (once a round to each rank, with
                                     its first ROUND; counted once for each of its clients)
    k -> aggregator    UPDATE        float32 [P]  k's parameters after local training (with --compress: uint8, its
                                     change from GLOBAL_MODEL coded a row a parameter tensor; with
                                     --compress-down GLOBAL_MODEL is coded so too), then
    k -> aggregator    UPDATE_INFO   obj {"train_loss", "bytes_sent", "bytes_received", "work"} (work.py; the
                                     aggregator weights by the shard sizes it was given at set-up)
  at most one client per core trains at a time: the aggregator starts the next sampled client whenever an
  update arrives; it takes the updates in the order they arrive and averages them in client order;
  at the end: aggregator -> every client  STOP  obj {}

Synchronous SGD with backup workers, per step s, with every worker k:

    server -> rank     PARAMS       float32 [P + 1]  the parameters, then s (exact: float32 holds integers < 2^24);
                                    one message a rank, counted once for each of its workers
    k -> server        GRADIENT     float32 [P + 3]  the gradient, then the step it is for, the batch loss and k
  the server uses the first N gradients for s; later ones for s are dropped and counted. A slow worker rank skips
  to the newest PARAMS waiting for it. At the end: server -> every worker rank STOP obj {}; each answers
  STOPPED obj {"work": its workers' work, epoch by epoch (work.py), "peak_rss_mb"}, and the server drops the
  gradients that arrive before that.
"""

from enum import IntEnum

SERVER = 0  # the rank that drives: server, aggregator or parameter server


class ProtocolError(RuntimeError):
    """A message that the protocol does not allow at this point (wrong sender, tag, size)."""


class Tag(IntEnum):
    # control (JSON objects)
    TURN = 1
    TURN_DONE = 2
    EVALUATE = 3
    STOP = 4
    ROUND = 5
    UPDATE_INFO = 6
    HAND_OVER = 7
    STOPPED = 8
    EXPORT = 9
    FAILED = 20  # any rank -> rank 0: {"error"}, just before a failing rank ends the job
    CHECKPOINT = 21
    SAVED = 22
    # arrays (raw buffers)
    SMASHED = 10
    LABELS = 11
    CUT_GRAD = 12
    CLIENT_STATE = 13
    UPDATE = 14
    GLOBAL_MODEL = 15
    PARAMS = 16
    GRADIENT = 17
    MIDDLE = 18
    HEAD_GRAD = 19

    @property
    def is_control(self):
        """Control messages are JSON objects; the others raw arrays."""
        return self < 10 or self >= Tag.FAILED


UNCOUNTED = {Tag.CHECKPOINT, Tag.SAVED}  # the experimenter's messages, not the method's: not in its traffic
# Fields of a control message that carry the experimenter's measurements (what a client computed, work.py), not
# the method's: not in its traffic either. Their size varies with the timings, and the counts must not.
MEASUREMENTS = {"work"}


def tag_name(tag):
    """The tag's name, or its number where it is no tag of ours (a peer may send anything)."""
    try:
        return Tag(tag).name
    except ValueError:
        return f"unknown tag {tag}"
