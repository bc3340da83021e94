/*  console_submit.c: a request submitted from the console is followed
 *  to its end, so that the status line says how it ended, not only that
 *  the controller took it: submit.ok means accepted, and a request
 *  accepted may still fail.  Its `result` comes on the DEALER that sent
 *  it; a status poll at each refresh covers a result lost with a
 *  reconnection.  */
#include <stdio.h>

#include "console.h"
#include "lifecycle.h"

void
dg_submit_accepted(dg_console_t *con, uint64_t request)
{
	con->submitted = request;
	dg_console_status(con, false, "submit: request %llu accepted, "
	    "waiting for its end", (unsigned long long)request);
}

/* The end of the followed request, on the status line. */
static void
s_ended(dg_console_t *con, uint64_t request, const char *state,
    const char *output, const char *error)
{
	int st = dg_req_state_lookup(state);

	if (st == DG_REQ_DONE)
		dg_console_status(con, false, "submit: request %llu done: %s",
		    (unsigned long long)request, output && *output ? output :
		    "no file");
	else
		dg_console_status(con, true, "submit: request %llu %s: %s",
		    (unsigned long long)request, state,
		    error && *error ? error : "no reason given");
	con->submitted = 0;
}

void
dg_submit_result(dg_console_t *con, const dg_msg_t *m)
{
	if (m->op == DG_OP_RESULT) {
		const dg_result_msg_t *r = &m->u.result;
		if (r->request == con->submitted)
			s_ended(con, r->request, r->status, r->output,
			    r->error);
		return;
	}
	if (m->op == DG_OP_ERROR) {
		/* Forgotten by a controller that restarted without a
		 * journal: nothing more will be heard of it. */
		if (dg_proto_code_lookup(m->u.error.code) ==
		    DG_PROTO_E_NOT_FOUND && con->submitted) {
			dg_console_status(con, true, "submit: request %llu: %s",
			    (unsigned long long)con->submitted,
			    m->u.error.message);
			con->submitted = 0;
		}
		return;
	}
	const dg_status_ok_msg_t *s = &m->u.status_ok;
	if (m->op != DG_OP_STATUS_OK || s->request != con->submitted)
		return;
	int st = dg_req_state_lookup(s->state);
	if (st == DG_REQ_DONE || st == DG_REQ_FAILED || st == DG_REQ_CANCELLED)
		s_ended(con, s->request, s->state, NULL, s->error);
}

void
dg_submit_poll(dg_console_t *con)
{
	if (!con->submitted || dg_console_outstanding(con, DG_PEND_SUBMIT, 0))
		return;
	dg_msg_t *m = dg_msg_new(DG_OP_STATUS);
	if (m)
		m->u.status.request = con->submitted;
	dg_console_request(con, m, DG_PEND_SUBMIT, 0, DG_CALL_MS, NULL);
}
