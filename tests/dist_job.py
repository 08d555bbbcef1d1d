"""One worker of a distributed ad_mnist.py job, for tests/test_distributed.py (run under
launch.py, not collected by pytest): it trains as ad_mnist.py does and writes OUT/rank-R.npz
with its initial and final weights and the batches it trained on.

  python tests/dist_job.py OUT [ad_mnist.py flags]
"""
import os
import sys

import numpy as np

import ad_mnist
from src import fit, mnist_sampler


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    record = {'batches': [], 'initial': None}
    next_batch = mnist_sampler.ClassSplitSampler.__next__
    fit_trainer = fit.Trainer.fit

    def recording_next(self):
        sample = next_batch(self)
        record['batches'].append(sample)
        return sample

    def recording_fit(self, *args, **kwargs):
        record['initial'] = {k: v.copy() for k, v in self.module.get_params()[0].items()}
        return fit_trainer(self, *args, **kwargs)

    mnist_sampler.ClassSplitSampler.__next__ = recording_next
    fit.Trainer.fit = recording_fit
    trainer = ad_mnist.main(argv)
    final = trainer.module.get_params()[0]
    arrays = {'initial:' + k: v.asnumpy() for k, v in record['initial'].items()}
    arrays.update({'final:' + k: v.asnumpy() for k, v in final.items()})
    for t, batch in enumerate(record['batches']):
        for name, value in zip(('src', 'src_y', 'tar', 'tar_y'), batch):
            arrays['batch%d:%s' % (t, name)] = value
    np.savez(os.path.join(out, 'rank-%d.npz' % trainer.rank), **arrays)


if __name__ == '__main__':
    main()
