/*  stage_python.c: the stage "python:MODULE:CLASS", a Python class run on
 *  CPython embedded in the daemon (the class's side: disagg-python(7),
 *  lib/python/disagg/stage.py and _host.py).
 *
 *  One interpreter per process, started by the first python: stage and
 *  never finalized (torch and friends do not survive Py_FinalizeEx well,
 *  and the process is ending anyway).  It is CPython 3.11 from Debian,
 *  pinned to /usr/bin/python3's prefix and isolated from the environment
 *  (PYTHONPATH, PYTHONHOME, user site): another Python first on PATH
 *  must not leak into a daemon.
 *
 *  The GIL is held only inside calls into Python: the thread that
 *  started the interpreter gives it up at once, and every call (plan on
 *  the control loop, run on a worker) takes it with PyGILState_Ensure.
 *  So `workers = 2` runs two batches at once wherever the stage's code
 *  releases the GIL, as torch does in its kernels.
 *
 *  Tensors are handed over without a copy: host memory as memoryviews
 *  over the pool that disagg._host turns into numpy arrays, CUDA memory
 *  as DLPack capsules that torch takes as CUDA tensors.  Everything that
 *  can go wrong in Python (an exception, a bad plan) becomes a message
 *  here; nothing raised there takes the daemon down.  */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlpack/dlpack.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stage_builtin.h"
#include "stage_host.h"
#include "y4m.h"

#ifndef DG_PYTHON_EXE
#define DG_PYTHON_EXE "/usr/bin/python3"
#endif
#ifndef DG_PYTHONDIR
#define DG_PYTHONDIR ""
#endif

typedef struct {
	PyObject *stage;                /* the class's instance */
	char role[32], name[64];
	int device;                     /* -1: host pool */
	void (*progress)(void);
	void (*step)(uint64_t room, int64_t step, int64_t steps);
	void (*suspend)(uint64_t room, int64_t step);
} s_py_t;

/* What an item's `_Ctl` reaches through its capsule; `live` is cleared
 * when run() returns, so a handle a stage kept does nothing after. */
typedef struct {
	const _Atomic int *stop;
	void (*progress)(void);
	void (*step)(uint64_t room, int64_t step, int64_t steps);
	void (*suspend)(uint64_t room, int64_t step);
	uint64_t room;
	bool live;
} s_ctl_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static int s_state;                     /* 0 not yet, 1 running, -1 failed */
static char s_failed[512];              /* why, when -1 */
static PyObject *s_host;                /* disagg._host */

/* The GIL for a call from this thread.  Each thread keeps its Python
 * thread state for its whole life instead of one per call: torch (through
 * pybind11) takes and drops the GIL on its own in tensor destructors, and
 * a thread state made and deleted around every call was deleted under it
 * (a crash seen with two workers). */
static __thread bool s_has_tstate;

static PyGILState_STATE
s_gil(void)
{
	if (!s_has_tstate) {
		(void)PyGILState_Ensure();      /* kept: never released */
		PyEval_SaveThread();
		s_has_tstate = true;
	}
	return PyGILState_Ensure();
}

/* ---- the _disagg module: what Python calls back into ------------------ */

static PyObject *
s_mod_log(PyObject *self, PyObject *args)
{
	int level;
	const char *text;
	(void)self;
	if (!PyArg_ParseTuple(args, "is", &level, &text))
		return NULL;
	if (level < DG_LOG_ERROR)
		level = DG_LOG_ERROR;
	if (level > DG_LOG_DEBUG)
		level = DG_LOG_DEBUG;
	dg_log_at(level, "%s", text);
	Py_RETURN_NONE;
}

static s_ctl_t *
s_ctl_of(PyObject *cap)
{
	return PyCapsule_GetPointer(cap, "disagg.ctl");
}

static PyObject *
s_mod_stopped(PyObject *self, PyObject *cap)
{
	(void)self;
	s_ctl_t *c = s_ctl_of(cap);
	if (!c)
		return NULL;
	/* A handle kept past run() reads as stopped: its room is gone. */
	if (!c->live || (c->stop && atomic_load(c->stop) == DG_STAGE_STOP))
		Py_RETURN_TRUE;
	Py_RETURN_FALSE;
}

/* The daemon asks the room to make way (DG_STAGE_YIELD), and can take
 * a suspension. */
static PyObject *
s_mod_should_yield(PyObject *self, PyObject *cap)
{
	(void)self;
	s_ctl_t *c = s_ctl_of(cap);
	if (!c)
		return NULL;
	if (c->live && c->suspend && c->stop &&
	    atomic_load(c->stop) == DG_STAGE_YIELD)
		Py_RETURN_TRUE;
	Py_RETURN_FALSE;
}

static PyObject *
s_mod_suspend(PyObject *self, PyObject *args)
{
	PyObject *cap;
	long long step;
	(void)self;
	if (!PyArg_ParseTuple(args, "OL", &cap, &step))
		return NULL;
	s_ctl_t *c = s_ctl_of(cap);
	if (!c)
		return NULL;
	if (!c->live || !c->suspend) {
		PyErr_SetString(PyExc_RuntimeError, "this item cannot be "
		    "suspended: it was not asked to yield, or its run is over");
		return NULL;
	}
	c->suspend(c->room, step);
	Py_RETURN_NONE;
}

static PyObject *
s_mod_progress(PyObject *self, PyObject *args)
{
	PyObject *cap;
	long long step, steps;
	(void)self;
	if (!PyArg_ParseTuple(args, "OLL", &cap, &step, &steps))
		return NULL;
	s_ctl_t *c = s_ctl_of(cap);
	if (!c)
		return NULL;
	if (!c->live)
		Py_RETURN_NONE;
	/* A step outside 1..steps says nothing a client could show. */
	if (c->step && steps > 0 && step >= 1 && step <= steps)
		c->step(c->room, step, steps);
	else if (c->progress)
		c->progress();
	Py_RETURN_NONE;
}

static PyMethodDef s_methods[] = {
	{ "log", s_mod_log, METH_VARARGS, "log(level, text): a log line" },
	{ "stopped", s_mod_stopped, METH_O, "stopped(ctl): room released" },
	{ "progress", s_mod_progress, METH_VARARGS,
	  "progress(ctl, step, steps): a step is done" },
	{ "should_yield", s_mod_should_yield, METH_O,
	  "should_yield(ctl): a more urgent room waits" },
	{ "suspend", s_mod_suspend, METH_VARARGS,
	  "suspend(ctl, step): suspended after step; state in the outputs" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef s_module = {
	PyModuleDef_HEAD_INIT, "_disagg",
	"The stage host's C side (lib/stage_python.c).", -1, s_methods,
	NULL, NULL, NULL, NULL,
};

static PyObject *
s_module_init(void)
{
	return PyModule_Create(&s_module);
}

/* ---- errors ------------------------------------------------------------ */

/* The pending exception as one line ("ValueError: frames must be ..."),
 * and its traceback to the log when `trace`.  Clears it. */
static void
s_exc(char *why, size_t whysize, const char *what, bool trace)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (!type) {
		snprintf(why, whysize, "%s failed", what);
		return;
	}
	if (tb && value)
		PyException_SetTraceback(value, tb);
	PyObject *line = NULL;
	if (s_host && value)
		line = PyObject_CallMethod(s_host, "describe", "O", value);
	if (!line && value) {
		PyErr_Clear();
		line = PyObject_Str(value);
	}
	const char *text = line ? PyUnicode_AsUTF8(line) : NULL;
	if (!text) {
		PyErr_Clear();
		text = "an exception that cannot be printed";
	}
	snprintf(why, whysize, "%s", text);
	if (trace && s_host) {
		PyObject *r = PyObject_CallMethod(s_host, "log_traceback", "OOOO",
		    Py_None, type, value ? value : Py_None, tb ? tb : Py_None);
		if (!r)
			PyErr_Clear();
		Py_XDECREF(r);
	} else if (trace) {
		dg_log_error("%s: %s", what, why);
	}
	Py_XDECREF(line);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* ---- the interpreter --------------------------------------------------- */

static int
s_path_insert(PyObject *path, Py_ssize_t at, const char *dir, size_t len)
{
	PyObject *s = PyUnicode_DecodeFSDefaultAndSize(dir, (Py_ssize_t)len);
	if (!s)
		return -1;
	int rc = PyList_Insert(path, at, s);
	Py_DECREF(s);
	return rc;
}

/* `dirs` (':'-separated) at the front of sys.path, in order.  GIL held. */
static int
s_add_paths(const char *dirs, char *why, size_t whysize)
{
	PyObject *path = PySys_GetObject("path");        /* borrowed */
	if (!path || !PyList_Check(path)) {
		snprintf(why, whysize, "python: sys.path is not a list");
		return -1;
	}
	Py_ssize_t at = 0;
	for (const char *p = dirs; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len && s_path_insert(path, at++, p, len) < 0) {
			s_exc(why, whysize, "python_path", false);
			return -1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* The disagg package beside this program (a build tree: lib/python next
 * to daemon/ and tui/), else where `make install` put it. */
static void
s_package_dir(char *buf, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	buf[0] = '\0';
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char probe[PATH_MAX + 64];
			snprintf(probe, sizeof probe,
			    "%s/../lib/python/disagg/_host.py", exe);
			if (access(probe, R_OK) == 0 &&
			    (size_t)snprintf(buf, size, "%s/../lib/python",
			    exe) < size)
				return;
		}
	}
	snprintf(buf, size, "%s", DG_PYTHONDIR);
}

/* Start the interpreter (once per process).  Called with no GIL; returns
 * with none.  0, or -1 with a reason. */
static int
s_interp(char *why, size_t whysize)
{
	pthread_mutex_lock(&s_lock);
	if (s_state != 0) {
		int rc = s_state > 0 ? 0 : -1;
		if (rc < 0)
			snprintf(why, whysize, "%s", s_failed);
		pthread_mutex_unlock(&s_lock);
		return rc;
	}
	s_state = -1;
	if (PyImport_AppendInittab("_disagg", s_module_init) < 0) {
		snprintf(s_failed, sizeof s_failed, "python: cannot register "
		    "the _disagg module");
		goto out;
	}
	PyConfig config;
	PyConfig_InitIsolatedConfig(&config);
	/* The prefix (and so the standard library and Debian's
	 * dist-packages) follows from the program's path. */
	PyStatus st = PyConfig_SetBytesString(&config, &config.program_name,
	    DG_PYTHON_EXE);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		snprintf(s_failed, sizeof s_failed, "python: cannot start "
		    "CPython (%s): %s", DG_PYTHON_EXE,
		    st.err_msg ? st.err_msg : "unknown error");
		goto out;
	}
	char pkg[PATH_MAX];
	s_package_dir(pkg, sizeof pkg);
	if (s_add_paths(pkg, s_failed, sizeof s_failed) == 0) {
		s_host = PyImport_ImportModule("disagg._host");
		if (!s_host) {
			char e[400];
			s_exc(e, sizeof e, "import disagg._host", true);
			snprintf(s_failed, sizeof s_failed, "python: cannot import "
			    "disagg._host (from %.200s or Debian's dist-packages): "
			    "%.240s", *pkg ? pkg : "nowhere", e);
		} else {
			PyObject *r = PyObject_CallMethod(s_host, "_start", NULL);
			if (r)
				s_state = 1;
			else
				s_exc(s_failed, sizeof s_failed, "python", true);
			Py_XDECREF(r);
		}
	}
	/* This thread keeps its state but not the GIL: every call takes
	 * it. */
	PyEval_SaveThread();
	s_has_tstate = true;
out:
	if (s_state < 0)
		snprintf(why, whysize, "%s", s_failed);
	pthread_mutex_unlock(&s_lock);
	return s_state > 0 ? 0 : -1;
}

/* ---- the stage --------------------------------------------------------- */

static PyObject *
s_env_dict(const dg_stage_env_t *env, const char *output_dir)
{
	return Py_BuildValue("{s:s,s:s,s:i,s:s,s:L,s:s,s:(KK),s:s}",
	    "role", env->role ? env->role : "",
	    "name", env->name ? env->name : "",
	    "device", env->device,
	    "memory", env->memory ? env->memory : "host",
	    "step_ms", (long long)env->step_ms,
	    "output_dir", output_dir ? output_dir : "",
	    "pool", (unsigned long long)(uintptr_t)env->pool_base,
	    (unsigned long long)env->pool_bytes,
	    "expert", env->expert ? env->expert : "all");
}

static PyObject *
s_given(const dg_stage_env_t *env)
{
	PyObject *list = PyList_New(0);
	for (size_t i = 0; list && env->options && env->options[2 * i]; i++) {
		PyObject *t = Py_BuildValue("(ssi)", env->options[2 * i],
		    env->options[2 * i + 1], env->option_lines ?
		    env->option_lines[i] : 0);
		if (!t || PyList_Append(list, t) < 0) {
			Py_XDECREF(t);
			Py_CLEAR(list);
			break;
		}
		Py_DECREF(t);
	}
	return list;
}

static int
s_init(const dg_stage_env_t *env, void **state, char *why, size_t whysize)
{
	if (env->abi < 2 || !env->stage ||
	    strncmp(env->stage, DG_STAGE_PYTHON_PREFIX,
	    strlen(DG_STAGE_PYTHON_PREFIX)) != 0) {
		snprintf(why, whysize, "python stage: the daemon gave no "
		    "python:MODULE:CLASS");
		return -1;
	}
	if (s_interp(why, whysize) < 0)
		return -1;
	s_py_t *self = calloc(1, sizeof *self);
	if (!self) {
		snprintf(why, whysize, "out of memory");
		return -1;
	}
	snprintf(self->role, sizeof self->role, "%s", env->role ? env->role :
	    "");
	snprintf(self->name, sizeof self->name, "%s", env->name ? env->name :
	    "");
	self->device = env->device;
	self->progress = env->progress;
	self->step = env->abi >= 4 ? env->step : NULL;
	self->suspend = env->abi >= 5 ? env->suspend : NULL;
	char *outdir = NULL;
	if (env->role && strcmp(env->role, "decoder") == 0 &&
	    !(outdir = dg_stage_output_dir(env->output_dir, why, whysize))) {
		free(self);
		return -1;
	}

	PyGILState_STATE g = s_gil();
	int rc = -1;
	if (s_add_paths(env->python_path, why, whysize) == 0) {
		PyObject *envd = s_env_dict(env, outdir);
		PyObject *given = s_given(env);
		if (envd && given)
			self->stage = PyObject_CallMethod(s_host, "load", "sOOs",
			    env->stage + strlen(DG_STAGE_PYTHON_PREFIX), envd,
			    given, env->config_file ? env->config_file : "-");
		if (self->stage) {
			rc = 0;
		} else {
			char e[400];
			s_exc(e, sizeof e, env->stage, true);
			snprintf(why, whysize, "%s: %s", env->stage, e);
		}
		Py_XDECREF(envd);
		Py_XDECREF(given);
	}
	PyGILState_Release(g);
	free(outdir);
	if (rc < 0) {
		free(self);
		return -1;
	}
	*state = self;
	return 0;
}

static PyObject *
s_request(const dg_request_t *r)
{
	return Py_BuildValue("{s:s,s:s,s:L,s:L,s:L,s:L,s:L,s:K,s:K,s:L,s:L,"
	    "s:L}",
	    "prompt", r->prompt ? r->prompt : "",
	    "negative_prompt", r->negative_prompt ? r->negative_prompt : "",
	    "frames", (long long)r->frames, "height", (long long)r->height,
	    "width", (long long)r->width, "steps", (long long)r->steps,
	    "seed", (long long)r->seed,
	    "request", (unsigned long long)r->request,
	    "room", (unsigned long long)r->room,
	    "step_begin", (long long)r->step_begin,
	    "step_end", (long long)r->step_end,
	    "resume_step", (long long)r->resume_step);
}

/* _host.plan's (name, dtype, shape) list into `plan`. */
static int
s_to_plan(PyObject *list, dg_tensor_plan_t *plan, char *why, size_t whysize)
{
	plan->n = 0;
	Py_ssize_t n = PyList_Size(list);
	for (Py_ssize_t i = 0; i < n; i++) {
		const char *name, *dtype;
		PyObject *shape;
		if (!PyArg_ParseTuple(PyList_GetItem(list, i), "ssO!", &name,
		    &dtype, &PyTuple_Type, &shape))
			return -1;
		int64_t dims[DG_STAGE_MAX_DIMS];
		Py_ssize_t nd = PyTuple_Size(shape);
		for (Py_ssize_t d = 0; d < nd && d < DG_STAGE_MAX_DIMS; d++)
			dims[d] = PyLong_AsLongLong(PyTuple_GetItem(shape, d));
		if (PyErr_Occurred())
			return -1;
		if (dg_tensor_plan_add(plan, name, dtype, (int)nd, dims) < 0) {
			snprintf(why, whysize, "tensor %s: too large", name);
			return -2;
		}
	}
	return 0;
}

static int
s_plan(void *state, const dg_request_t *req, dg_tensor_plan_t *in,
    dg_tensor_plan_t *out, char *why, size_t whysize)
{
	s_py_t *self = state;
	in->n = out->n = 0;
	PyGILState_STATE g = s_gil();
	int rc = -1;
	PyObject *r = s_request(req);
	PyObject *res = r ? PyObject_CallMethod(s_host, "plan", "OO",
	    self->stage, r) : NULL;
	PyObject *ins, *outs;
	if (res && PyArg_ParseTuple(res, "O!O!", &PyList_Type, &ins,
	    &PyList_Type, &outs)) {
		rc = s_to_plan(ins, in, why, whysize);
		if (rc == 0)
			rc = s_to_plan(outs, out, why, whysize);
	}
	if (rc == -1)
		s_exc(why, whysize, "plan", false);
	Py_XDECREF(r);
	Py_XDECREF(res);
	PyGILState_Release(g);
	return rc < 0 ? -1 : 0;
}

/* ---- run --------------------------------------------------------------- */

typedef struct {
	DLManagedTensor t;
	int64_t shape[DG_STAGE_MAX_DIMS];
} s_dl_t;

static void
s_dl_delete(DLManagedTensor *t)
{
	free(t);                /* s_dl_t starts with it */
}

static void
s_dl_capsule_free(PyObject *cap)
{
	/* Not taken by a consumer (which renames it): ours to free. */
	if (PyCapsule_IsValid(cap, "dltensor")) {
		DLManagedTensor *t = PyCapsule_GetPointer(cap, "dltensor");
		if (t && t->deleter)
			t->deleter(t);
	}
}

static bool
s_dl_dtype(const char *dtype, DLDataType *dt)
{
	static const struct {
		const char *name;
		uint8_t code, bits;
	} map[] = {
		{ "f32", kDLFloat, 32 }, { "f16", kDLFloat, 16 },
		{ "bf16", kDLBfloat, 16 }, { "u8", kDLUInt, 8 },
		{ "i32", kDLInt, 32 }, { "i64", kDLInt, 64 },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].name, dtype) == 0) {
			*dt = (DLDataType){ map[i].code, map[i].bits, 1 };
			return true;
		}
	return false;
}

/* A DLPack capsule over device memory: torch takes it as a CUDA tensor
 * without a copy; the memory stays the pool's. */
static PyObject *
s_dlpack(const dg_tensor_spec_t *t, void *ptr, int device)
{
	s_dl_t *d = calloc(1, sizeof *d);
	if (!d)
		return PyErr_NoMemory();
	if (!s_dl_dtype(t->dtype, &d->t.dl_tensor.dtype)) {
		free(d);
		PyErr_Format(PyExc_ValueError, "dtype %s", t->dtype);
		return NULL;
	}
	for (int i = 0; i < t->ndim; i++)
		d->shape[i] = t->shape[i];
	d->t.dl_tensor.data = ptr;
	d->t.dl_tensor.device = (DLDevice){ kDLCUDA, device };
	d->t.dl_tensor.ndim = t->ndim;
	d->t.dl_tensor.shape = d->shape;
	d->t.dl_tensor.strides = NULL;          /* compact, row-major */
	d->t.dl_tensor.byte_offset = 0;
	d->t.deleter = s_dl_delete;
	PyObject *cap = PyCapsule_New(&d->t, "dltensor", s_dl_capsule_free);
	if (!cap)
		free(d);
	return cap;
}

/* [(name, dtype, shape, buffer, device), ...] for one side of an item. */
static PyObject *
s_tensors(const dg_tensor_plan_t *plan, void *const *ptrs, int device)
{
	PyObject *list = PyList_New((Py_ssize_t)plan->n);
	for (size_t k = 0; list && k < plan->n; k++) {
		const dg_tensor_spec_t *t = &plan->t[k];
		PyObject *shape = PyTuple_New(t->ndim);
		for (int d = 0; shape && d < t->ndim; d++)
			PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(t->shape[d]));
		PyObject *buf = device >= 0 ? s_dlpack(t, ptrs[k], device) :
		    PyMemoryView_FromMemory(ptrs[k], (Py_ssize_t)t->bytes,
		    PyBUF_WRITE);
		PyObject *e = shape && buf ? Py_BuildValue("(ssOOi)", t->name,
		    t->dtype, shape, buf, device) : NULL;
		Py_XDECREF(shape);
		Py_XDECREF(buf);
		if (!e) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)k, e);
	}
	return list;
}

static void
s_ctl_free(PyObject *cap)
{
	free(PyCapsule_GetPointer(cap, "disagg.ctl"));
}

static void
s_fail_all(dg_stage_item_t *items, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		if (!items[i].error[0])
			snprintf(items[i].error, sizeof items[i].error, "%s", why);
}

/* One item's (error, output) from _host.run. */
static void
s_result(dg_stage_item_t *it, PyObject *res)
{
	PyObject *err, *out;
	if (!PyArg_ParseTuple(res, "OO", &err, &out)) {
		PyErr_Clear();
		snprintf(it->error, sizeof it->error, "python stage: bad result");
		return;
	}
	if (err != Py_None) {
		const char *e = PyUnicode_Check(err) ? PyUnicode_AsUTF8(err) : NULL;
		snprintf(it->error, sizeof it->error, "%s", e && *e ? e :
		    "failed");
		PyErr_Clear();
		return;
	}
	if (out == Py_None)
		return;
	PyObject *path = NULL;
	if (!PyUnicode_FSConverter(out, &path)) {
		PyErr_Clear();
		snprintf(it->error, sizeof it->error, "item.output is not a path");
		return;
	}
	const char *p = PyBytes_AsString(path);
	if (snprintf(it->output, sizeof it->output, "%s", p) >=
	    (int)sizeof it->output)
		snprintf(it->error, sizeof it->error, "item.output: path longer "
		    "than %zu bytes", sizeof it->output - 1);
	Py_DECREF(path);
}

static int
s_run(void *state, dg_stage_item_t *items, size_t n)
{
	s_py_t *self = state;
	s_ctl_t **ctls = calloc(n, sizeof *ctls);
	if (!ctls) {
		s_fail_all(items, n, "out of memory");
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		items[i].error[0] = items[i].output[0] = items[i].digest[0] = 0;
		items[i].output_bytes = 0;
	}
	PyGILState_STATE g = s_gil();
	PyObject *batch = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; batch && i < n; i++) {
		dg_stage_item_t *it = &items[i];
		s_ctl_t *c = calloc(1, sizeof *c);
		PyObject *cap = c ? PyCapsule_New(c, "disagg.ctl", s_ctl_free) :
		    NULL;
		if (!cap) {
			free(c);
			Py_CLEAR(batch);
			break;
		}
		*c = (s_ctl_t){ .stop = it->stop, .progress = self->progress,
		    .step = self->step, .suspend = self->suspend,
		    .room = it->req->room, .live = true };
		ctls[i] = c;
		PyObject *req = s_request(it->req);
		PyObject *ins = s_tensors(it->in_plan, (void *const *)it->in,
		    self->device);
		PyObject *outs = s_tensors(it->out_plan, it->out, self->device);
		PyObject *e = req && ins && outs ? PyTuple_Pack(4, req, ins,
		    outs, cap) : NULL;
		Py_XDECREF(req);
		Py_XDECREF(ins);
		Py_XDECREF(outs);
		Py_DECREF(cap);
		if (!e) {
			Py_CLEAR(batch);
			break;
		}
		PyList_SET_ITEM(batch, (Py_ssize_t)i, e);
	}
	PyObject *res = batch ? PyObject_CallMethod(s_host, "run", "OO",
	    self->stage, batch) : NULL;
	if (res && PyList_Check(res) && PyList_Size(res) == (Py_ssize_t)n) {
		for (size_t i = 0; i < n; i++)
			s_result(&items[i], PyList_GetItem(res, (Py_ssize_t)i));
	} else {
		char why[256];
		if (res)
			snprintf(why, sizeof why, "python stage: run gave %zd "
			    "results for %zu items", res && PyList_Check(res) ?
			    PyList_Size(res) : -1, n);
		else
			s_exc(why, sizeof why, "run", true);
		s_fail_all(items, n, why);
	}
	Py_XDECREF(res);
	/* Views a stage kept are dead from here: the memory is the pool's
	 * again once we return. */
	for (size_t i = 0; i < n; i++)
		if (ctls[i])
			ctls[i]->live = false;
	Py_XDECREF(batch);
	PyGILState_Release(g);
	free(ctls);

	/* The file a decoder wrote: its size and digest, as the ref decoder
	 * reports them. */
	for (size_t i = 0; i < n; i++) {
		dg_stage_item_t *it = &items[i];
		if (it->error[0] || !it->output[0])
			continue;
		char why[200];
		if (dg_y4m_digest_file(it->output, &it->output_bytes, it->digest,
		    sizeof it->digest, why, sizeof why) < 0) {
			snprintf(it->error, sizeof it->error, "item.output: %s",
			    why);
			it->output[0] = '\0';
		}
	}
	return 0;
}

static void
s_fini(void *state)
{
	s_py_t *self = state;
	if (!self)
		return;
	PyGILState_STATE g = s_gil();
	Py_XDECREF(self->stage);
	PyGILState_Release(g);
	free(self);
}

const dg_stage_ops_t dg_stage_python_ops = {
	.abi = DG_STAGE_ABI, .name = "python",
	.init = s_init, .plan = s_plan, .run = s_run, .fini = s_fini,
};
