/*  policy.c: instance choice; see policy.h.  */
#include "config.h"
#include "policy.h"

int64_t
dg_policy_score(const dg_candidate_t *c)
{
	return 4 * (c->waiting + c->optimistic) + c->running;
}

static uint64_t
s_next_random(uint64_t *state)
{
	/* splitmix64: tiny, good enough to pick two candidates. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int
dg_policy_pick(int policy, const dg_candidate_t *c, size_t n,
    dg_policy_state_t *st)
{
	size_t eligible = 0;

	for (size_t i = 0; i < n; i++)
		eligible += c[i].eligible;
	if (eligible == 0)
		return -1;

	if (policy == DG_POLICY_ROUND_ROBIN) {
		for (size_t k = 0; k < n; k++) {
			size_t i = (size_t)((st->cursor + k) % n);
			if (c[i].eligible) {
				st->cursor = i + 1;
				return (int)i;
			}
		}
		return -1;
	}
	if (policy == DG_POLICY_P2C && eligible > 2) {
		size_t a = 0, b = 0, pick[2] = { 0, 0 };
		for (int j = 0; j < 2; j++) {
			/* The k-th eligible one, the second distinct from the
			 * first. */
			size_t k = (size_t)(s_next_random(&st->rng) %
			    (j ? eligible - 1 : eligible));
			for (size_t i = 0; i < n; i++) {
				if (!c[i].eligible || (j && i == pick[0]))
					continue;
				if (k-- == 0) {
					pick[j] = i;
					break;
				}
			}
		}
		a = pick[0];
		b = pick[1];
		return dg_policy_score(&c[b]) < dg_policy_score(&c[a]) ?
		    (int)b : (int)a;
	}
	/* least-loaded (and p2c with two or fewer to choose from): the
	 * lowest score, searching from the cursor so ties rotate;
	 * earliest-finish: the lowest predicted finish first. */
	int best = -1;
	int64_t best_score = 0, best_finish = 0;
	bool by_finish = policy == DG_POLICY_EARLIEST_FINISH;
	for (size_t k = 0; k < n; k++) {
		size_t i = (size_t)((st->cursor + k) % n);
		if (!c[i].eligible)
			continue;
		int64_t s = dg_policy_score(&c[i]);
		int64_t f = by_finish ? c[i].finish_us : 0;
		if (best < 0 || f < best_finish ||
		    (f == best_finish && s < best_score)) {
			best = (int)i;
			best_score = s;
			best_finish = f;
		}
	}
	st->cursor = (uint64_t)best + 1;
	return best;
}
