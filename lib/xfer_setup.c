/*  xfer_setup.c: opening and closing the fabric: the provider's info,
 *  domain, CQ, address vector, an endpoint per rail and the pool's one
 *  registration; and the shm regions that dead processes left behind.  */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "xfer.h"
#include "xfer_impl.h"

/* libfabric 1.17's shm provider keeps each endpoint's region in
 * /dev/shm/PID:N:M and unlinks it only on a clean close, so a daemon
 * that was killed leaves 16 MiB of tmpfs behind for good.  Remove the
 * regions of our own user whose process is gone (and, after a re-exec,
 * our own pid's, which the new image would otherwise collide with). */
static void
s_shm_collect(bool own_pid_too)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *de;
	int removed = 0;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		int pid, a, b, n = 0;
		long long start;
		if ((sscanf(de->d_name, "%d-%lld:%d:%d%n", &pid, &start, &a,
		    &b, &n) != 4 || de->d_name[n] != '\0') &&
		    (sscanf(de->d_name, "%d:%d:%d%n", &pid, &a, &b, &n) != 3 ||
		    de->d_name[n] != '\0'))
			continue;
		if (pid <= 0)
			continue;
		char path[300];
		struct stat st;
		snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
		if (stat(path, &st) < 0 || st.st_uid != getuid())
			continue;
		bool mine = pid == (int)getpid();
		if ((mine && own_pid_too) ||
		    (!mine && kill(pid, 0) < 0 && errno == ESRCH)) {
			if (unlink(path) == 0)
				removed++;
		}
	}
	closedir(dir);
	if (removed)
		dg_log_info("xfer: removed %d shm region%s left by processes "
		    "that are gone", removed, removed > 1 ? "s" : "");
}

static struct fi_info *
s_getinfo(const char *provider, const char *node, bool hmem, char *why,
    size_t whysize)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;

	if (!hints) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	hints->caps = FI_RMA | FI_WRITE | FI_REMOTE_WRITE | (hmem ? FI_HMEM : 0);
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
	    FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT |
	    (hmem ? FI_MR_HMEM : 0);
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->fabric_attr->prov_name = strdup(provider);
	bool shm = strcmp(provider, "shm") == 0;
	/* shm names an endpoint PID:UID:N by default; a daemon that
	 * restarts in place (same pid) would get its old name back while
	 * its peers still map the old region under it.  PID-START is
	 * unique per engine, and still begins with the pid for
	 * s_shm_collect(). */
	char shm_name[64];
	if (shm) {
		snprintf(shm_name, sizeof shm_name, "%d-%lld", (int)getpid(),
		    (long long)dg_xfer_now_ms());
		node = shm_name;
	}
	int rc = fi_getinfo(FI_VERSION(1, 17), node, NULL,
	    node ? FI_SOURCE : 0, hints, &info);
	fi_freeinfo(hints);
	if (rc) {
		snprintf(why, whysize, "no libfabric provider '%s' with RDM "
		    "and RMA here: %s", provider, fi_strerror(-rc));
		return NULL;
	}
	if (info->domain_attr->cq_data_size < 8) {
		snprintf(why, whysize, "provider '%s' carries %zu bytes of CQ "
		    "data; 8 are needed", provider,
		    info->domain_attr->cq_data_size);
		fi_freeinfo(info);
		return NULL;
	}
	return info;
}

int
dg_xfer_fabric_open(dg_xfer_t *self, const char *node, char *why,
    size_t whysize)
{
	const dg_fabric_conf_t *conf = &self->conf;
	dg_pool_t *pool = self->pool;
	int rc;

	bool device = dg_pool_kind(pool) == DG_MEM_DEVICE;
	self->is_shm = strcmp(conf->provider, "shm") == 0;
	if (self->is_shm)
		s_shm_collect(getenv("DISAGG_REEXEC") != NULL);
	self->info = s_getinfo(conf->provider, node, device, why, whysize);
	if (!self->info)
		return -1;
	if ((rc = fi_fabric(self->info->fabric_attr, &self->fabric, NULL))) {
		snprintf(why, whysize, "fi_fabric: %s", fi_strerror(-rc));
		return -1;
	}
	if ((rc = fi_domain(self->fabric, self->info, &self->domain, NULL))) {
		snprintf(why, whysize, "fi_domain: %s", fi_strerror(-rc));
		return -1;
	}
	/* A wait fd lets the idle thread sleep until the provider has work;
	 * shm signals none across processes in 1.17, so it polls instead. */
	struct fi_cq_attr cq_attr = {
		.format = FI_CQ_FORMAT_DATA,
		.size = 4096,
		.wait_obj = strcmp(conf->provider, "shm") ? FI_WAIT_FD :
		    FI_WAIT_NONE,
	};
	rc = fi_cq_open(self->domain, &cq_attr, &self->cq, NULL);
	if (rc && cq_attr.wait_obj != FI_WAIT_NONE) {
		cq_attr.wait_obj = FI_WAIT_NONE;
		rc = fi_cq_open(self->domain, &cq_attr, &self->cq, NULL);
	}
	if (rc) {
		snprintf(why, whysize, "fi_cq_open: %s", fi_strerror(-rc));
		return -1;
	}
	if (cq_attr.wait_obj == FI_WAIT_FD &&
	    fi_control(&self->cq->fid, FI_GETWAIT, &self->cq_fd))
		self->cq_fd = -1;
	struct fi_av_attr av_attr = { .type = FI_AV_TABLE };
	if ((rc = fi_av_open(self->domain, &av_attr, &self->av, NULL))) {
		snprintf(why, whysize, "fi_av_open: %s", fi_strerror(-rc));
		return -1;
	}
	for (int r = 0; r < self->nrails; r++) {
		if ((rc = fi_endpoint(self->domain, self->info, &self->ep[r],
		    NULL))) {
			snprintf(why, whysize, "fi_endpoint (rail %d): %s", r,
			    fi_strerror(-rc));
			return -1;
		}
		if ((rc = fi_ep_bind(self->ep[r], &self->cq->fid,
		    FI_TRANSMIT | FI_RECV)) ||
		    (rc = fi_ep_bind(self->ep[r], &self->av->fid, 0)) ||
		    (rc = fi_enable(self->ep[r]))) {
			snprintf(why, whysize, "endpoint set-up (rail %d): %s",
			    r, fi_strerror(-rc));
			return -1;
		}
		self->addrlen[r] = DG_XFER_ADDR_MAX;
		if ((rc = fi_getname(&self->ep[r]->fid, self->addr[r],
		    &self->addrlen[r]))) {
			snprintf(why, whysize, "fi_getname (rail %d): %s", r,
			    fi_strerror(-rc));
			return -1;
		}
		self->addr_bins[r].data = self->addr[r];
		self->addr_bins[r].size = self->addrlen[r];
		/* Before the progress thread owns the AV. */
		size_t nlen = sizeof self->addr_name[r];
		if (!fi_av_straddr(self->av, self->addr[r], self->addr_name[r],
		    &nlen))
			snprintf(self->addr_name[r], sizeof self->addr_name[r],
			    "?");
	}

	/* The one registration of the pool, for every transfer to come. */
	uint64_t mr_mode = (uint64_t)self->info->domain_attr->mr_mode;
	struct iovec iov = { dg_pool_base(pool), dg_pool_size(pool) };
	struct fi_mr_attr mr_attr = {
		.mr_iov = &iov, .iov_count = 1,
		.access = FI_WRITE | FI_REMOTE_WRITE | FI_READ | FI_REMOTE_READ,
		.requested_key = 1,
		.iface = device ? FI_HMEM_CUDA : FI_HMEM_SYSTEM,
	};
	if (device)
		mr_attr.device.cuda = dg_pool_device(pool);
	rc = fi_mr_regattr(self->domain, &mr_attr, 0, &self->mr);
	if (rc) {
		snprintf(why, whysize, "fi_mr_reg of the %zu-byte pool: %s",
		    dg_pool_size(pool), fi_strerror(-rc));
		return -1;
	}
	if (mr_mode & FI_MR_ENDPOINT) {
		for (int r = 0; r < self->nrails && !rc; r++)
			rc = fi_mr_bind(self->mr, &self->ep[r]->fid, 0);
		if (!rc)
			rc = fi_mr_enable(self->mr);
		if (rc) {
			snprintf(why, whysize, "binding the pool to the "
			    "endpoints: %s", fi_strerror(-rc));
			return -1;
		}
	}
	self->key = fi_mr_key(self->mr);
	self->desc = fi_mr_desc(self->mr);
	self->base = (mr_mode & FI_MR_VIRT_ADDR) ?
	    (uint64_t)(uintptr_t)dg_pool_base(pool) : 0;
	return 0;
}

void
dg_xfer_fabric_close(dg_xfer_t *self)
{
	for (int r = 0; r < self->nrails; r++)
		if (self->ep[r])
			fi_close(&self->ep[r]->fid);
	if (self->mr)
		fi_close(&self->mr->fid);
	if (self->av)
		fi_close(&self->av->fid);
	if (self->cq)
		fi_close(&self->cq->fid);
	if (self->domain)
		fi_close(&self->domain->fid);
	if (self->fabric)
		fi_close(&self->fabric->fid);
	if (self->info)
		fi_freeinfo(self->info);
}
