/* The per-level loop of feeds.book.OrderBook.apply, compiled: the same steps as feeds/_levels_py.py, which is
 * its reference (tests/test_book_levels.py replays real diffs and random ones through both, to the bit).
 *
 * A side is a dict price -> quantity (every level) plus a sorted list of the best prices only, the window
 * (bids: prices ascending; asks: negated prices ascending, so the best is last either way), and ``worst``,
 * the window's worst key (-inf when the window holds the whole side). A level with a quantity sets it; a
 * quantity of 0 removes it. A level whose key is better than ``worst`` is in the window (a new one is
 * inserted in order); one at or below it lives in the dict only. Returns whether the diff may reach the walks:
 * its best changed key (the highest bid, the negated lowest ask; ``changes`` is never empty) is above the
 * walks' watermark ``mark``, or at it with a quantity below ``need`` (OrderBook._mark keeps both).
 *
 * Why C: the loop is dict and list operations on boxed floats, ~210-560 ns a level in the interpreter and the
 * largest part of a large diff's cost (bench/RESULTS.md); here they are the same C API calls without the
 * bytecode around them. Levels are (float, float) tuples (or 2-lists) and the window holds floats: anything
 * else is a TypeError here, where the Python reference would do whatever Python does with it.
 *
 * first_bad_level is the check every parsed level passes before it reaches a book (feeds.levels.check_levels):
 * one pass of compares, so the protocols can afford it on every diff.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* One hash per level: a float's hash is computed once and passed to each dict call (CPython 3.11 and 3.12
 * export these known-hash calls; other versions take the public ones, which hash again). */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#define DICT_GET(d, k, h) _PyDict_GetItem_KnownHash((d), (k), (h))
#define DICT_SET(d, k, v, h) _PyDict_SetItem_KnownHash((d), (k), (v), (h))
#define DICT_DEL(d, k, h) _PyDict_DelItem_KnownHash((d), (k), (h))
#else
#define DICT_GET(d, k, h) ((void)(h), PyDict_GetItemWithError((d), (k)))
#define DICT_SET(d, k, v, h) ((void)(h), PyDict_SetItem((d), (k), (v)))
#define DICT_DEL(d, k, h) ((void)(h), PyDict_DelItem((d), (k)))
#endif

/* Prices and quantities are exact floats (what every parser makes): anything else is refused, so no Python
 * code (a __hash__, __eq__ or __float__) can run inside the loop and change the lists under it. */
static int as_double(PyObject *o, double *out) {
    if (!PyFloat_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "a price or quantity must be a float, got %.80s", Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(o);
    return 0;
}

/* bisect.bisect_left (right = 0) or bisect.bisect_right (right = 1) of x in an ascending list of floats. */
static int bisect(PyObject *keys, double x, int right, Py_ssize_t *out) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        double v;
        if (as_double(PyList_GET_ITEM(keys, mid), &v) < 0) {
            return -1;
        }
        if (right ? (x < v) : (v < x)) {
            if (right) hi = mid; else lo = mid + 1;
        } else {
            if (right) lo = mid + 1; else hi = mid;
        }
    }
    *out = lo;
    return 0;
}

/* One level's (price, qty) objects, borrowed, if it is a 2-tuple or a 2-list: 1; else 0, no error set. */
static int as_pair(PyObject *level, PyObject **price, PyObject **qty) {
    if (PyTuple_CheckExact(level) && PyTuple_GET_SIZE(level) == 2) {
        *price = PyTuple_GET_ITEM(level, 0);
        *qty = PyTuple_GET_ITEM(level, 1);
        return 1;
    }
    if (PyList_CheckExact(level) && PyList_GET_SIZE(level) == 2) {
        *price = PyList_GET_ITEM(level, 0);
        *qty = PyList_GET_ITEM(level, 1);
        return 1;
    }
    return 0;
}

/* The same, as tuple unpacking does it, with its errors. */
static int unpack(PyObject *level, PyObject **price, PyObject **qty) {
    if (as_pair(level, price, qty)) {
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "a level must be a (price, quantity) pair, got %R", level);
    return -1;
}

#define SIGNATURE "expected (levels: dict, keys: list, changes: list, worst: float, mark: float, need: float)"

static PyObject *apply_side(PyObject *const *args, Py_ssize_t nargs, int negate) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, SIGNATURE);
        return NULL;
    }
    PyObject *book = args[0], *keys = args[1], *changes = args[2];
    if (!PyDict_CheckExact(book) || !PyList_CheckExact(keys) || !PyList_CheckExact(changes)) {
        PyErr_SetString(PyExc_TypeError, SIGNATURE);
        return NULL;
    }
    double worst;
    if (as_double(args[3], &worst) < 0) {
        return NULL;
    }
    /* The walks' watermark: read before the loop, so any number will do (PyFloat_AsDouble runs __float__). */
    double mark = PyFloat_AsDouble(args[4]);
    if (mark == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double need = PyFloat_AsDouble(args[5]);
    if (need == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(changes);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "no changes: a side with none is not applied");
        return NULL;
    }
    /* The best changed key and the least quantity set at it: what decides whether walks are reached. */
    double best = -Py_HUGE_VAL, best_qty = Py_HUGE_VAL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *price_o, *qty_o;
        double price, qty, key;
        if (unpack(PyList_GET_ITEM(changes, i), &price_o, &qty_o) < 0 || as_double(price_o, &price) < 0 ||
            as_double(qty_o, &qty) < 0) {
            return NULL;
        }
        Py_hash_t hash = PyObject_Hash(price_o);
        if (hash == -1) {
            return NULL;
        }
        key = negate ? -price : price;
        if (key > best || i == 0) {
            best = key;
            best_qty = qty;
        } else if (key == best && qty < best_qty) {
            best_qty = qty;
        }
        if (qty != 0.0) { /* `if qty:` (a NaN quantity is true, as in Python) */
            if (key > worst) {
                PyObject *present = DICT_GET(book, price_o, hash);
                if (present == NULL && PyErr_Occurred()) {
                    return NULL;
                }
                if (present == NULL) { /* insort(keys, key) */
                    Py_ssize_t at;
                    if (bisect(keys, key, 1, &at) < 0) {
                        return NULL;
                    }
                    PyObject *key_o = negate ? PyFloat_FromDouble(key) : Py_NewRef(price_o);
                    if (key_o == NULL) {
                        return NULL;
                    }
                    int failed = PyList_Insert(keys, at, key_o);
                    Py_DECREF(key_o);
                    if (failed < 0) {
                        return NULL;
                    }
                }
            }
            if (DICT_SET(book, price_o, qty_o, hash) < 0) {
                return NULL;
            }
            continue;
        }
        /* book.pop(price, None) */
        PyObject *old = DICT_GET(book, price_o, hash);
        if (old == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            continue;
        }
        if (DICT_DEL(book, price_o, hash) < 0) {
            return NULL;
        }
        if (key >= worst) { /* in the window, unless the same diff re-added it below the window */
            Py_ssize_t at;
            if (bisect(keys, key, 0, &at) < 0) {
                return NULL;
            }
            if (at < PyList_GET_SIZE(keys)) {
                double found;
                if (as_double(PyList_GET_ITEM(keys, at), &found) < 0) {
                    return NULL;
                }
                if (found == key && PyList_SetSlice(keys, at, at + 1, NULL) < 0) {
                    return NULL;
                }
            }
        }
    }
    return PyBool_FromLong(best > mark || (best == mark && best_qty < need));
}

/* The index of the first level that is not (price, qty) floats with 0 < price < inf and 0 <= qty < inf
 * (a NaN fails both), or -1: what feeds.levels.check_levels refuses before a level reaches a book. */
static PyObject *first_bad_level(PyObject *module, PyObject *levels) {
    (void)module;
    if (!PyList_CheckExact(levels)) {
        PyErr_Format(PyExc_TypeError, "levels must be a list, got %.80s", Py_TYPE(levels)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(levels);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *price_o, *qty_o;
        if (!as_pair(PyList_GET_ITEM(levels, i), &price_o, &qty_o) || !PyFloat_CheckExact(price_o) ||
            !PyFloat_CheckExact(qty_o)) {
            return PyLong_FromSsize_t(i);
        }
        double price = PyFloat_AS_DOUBLE(price_o), qty = PyFloat_AS_DOUBLE(qty_o);
        if (!(price > 0.0 && price < Py_HUGE_VAL && qty >= 0.0 && qty < Py_HUGE_VAL)) {
            return PyLong_FromSsize_t(i);
        }
    }
    return PyLong_FromSsize_t(-1);
}

static PyObject *apply_bids(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    return apply_side(args, nargs, 0);
}

static PyObject *apply_asks(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    return apply_side(args, nargs, 1);
}

static PyMethodDef methods[] = {
    {"apply_bids", (PyCFunction)(void (*)(void))apply_bids, METH_FASTCALL,
     "apply_bids(levels, keys, changes, worst, mark, need) -> whether walks may be reached: set or remove each "
     "(price, qty)."},
    {"apply_asks", (PyCFunction)(void (*)(void))apply_asks, METH_FASTCALL,
     "apply_asks(levels, keys, changes, worst, mark, need) -> the same for an ask side (keys, worst, mark: -price)."},
    {"first_bad_level", (PyCFunction)first_bad_level, METH_O,
     "first_bad_level(levels) -> index of the first level that is not a finite positive price with a finite "
     "non-negative quantity (both floats), or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "feeds._levels", "OrderBook.apply's per-level loop, compiled (see _levels_py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__levels(void) { return PyModule_Create(&module); }
