"""Regular (centralised) learning: the baseline. One data holder trains LeNet-5 on all the training data.

    python regular_learning.py            # the report's experiment; writes results/regular.json
    python regular_learning.py --help
"""


from data import batches, load_fashion_mnist, num_batches, shuffle_generator
from models import build
from splitlab.costs.work import Work, epoch_keys, peak_rss_mb
from splitlab.training.checkpoint import in_one_process
from splitlab.training.cli import common_parser, resolve_device, run_main, warn_if_link_set
from splitlab.training.loop import fit, progress
from splitlab.training.results import Results
from splitlab.training.steps import evaluate, set_lr, sgd, train_epoch


def main():
    parser = common_parser("regular", __doc__.splitlines()[0])
    args = parser.parse_args()
    warn_if_link_set()
    device = resolve_device(args.device)

    x_train, y_train, x_test, y_test = (t.to(device) for t in load_fashion_mnist(
        args.data_dir, args.train_subset, args.test_subset, args.validation, args.seed))
    model = build(args.model, args.seed).to(device)
    optimizer = sgd(model.parameters(), args)
    shuffle = shuffle_generator(args.seed)
    work = Work()  # the one data holder's (work.py)

    def train_one_epoch(epoch, lr):
        set_lr(optimizer, lr)
        epoch_batches = batches(x_train, y_train, args.batch_size, shuffle)
        total = num_batches(len(y_train), args.batch_size)
        with work.active():
            loss = train_epoch(model, optimizer, progress(args, epoch_batches, total, f"epoch {epoch}"), work)
        return {"train_loss": loss, **epoch_keys(None, [{**work.take(), "peak_rss_mb": peak_rss_mb()}])}

    save, resumed = in_one_process(args, {"model": model, "optimizer": optimizer, "shuffle": shuffle})
    results = Results(args, parser, "regular", device)
    fit(args, results, train_one_epoch,
        lambda: evaluate(model, x_test, y_test, args.test_batch_size, args.validation), save=save, resumed=resumed)
    print(f"results: {results.path}")


if __name__ == "__main__":
    run_main(main)
