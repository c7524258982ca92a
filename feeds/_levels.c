/* One side of an order book, compiled: feeds._levels.Side, with feeds/_levels_py.py's Side as its reference
 * (tests/test_book_levels.py replays real diffs and random ones through both and compares every state, to the
 * bit). feeds.book.OrderBook keeps one per side.
 *
 * Storage. Every level sits in an open-addressing hash table of (price, quantity) doubles: no Python object
 * per level. The reference's dict of boxed floats costs about three cache misses a level in a 5,000-level
 * book (the index, the entry, the key's float object; and the old quantity's object is freed), which made
 * its per-level loop ~200 ns inside the pipeline (bench/RESULTS.md, item 10); here a level is one 16-byte
 * slot, found by linear probing. The best prices also sit in the window, a sorted array of keys (bids: the
 * price; asks: minus the price; ascending, so the best is last either way), which top-of-book reads, walks
 * and levels() read in order. The window's rules are the reference's, step for step: a level better than its
 * worst key joins it, one at or below it lives in the table only; after a diff, a window grown past twice
 * ``window`` is cut back to its best ``window``, one shrunk below a quarter of it while deeper levels exist
 * is refilled from the table; a walk or read needing more than the window widens it to the whole side.
 *
 * Numbers. The walk does the reference's float operations in its order, so fills are equal to the bit (the
 * build passes -ffp-contract=off: a fused multiply-add would round once where Python rounds twice).
 *
 * first_bad_level is the check every parsed level passes before it reaches a book (feeds.levels.check_levels):
 * one pass of compares, so the protocols can afford it on every diff.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Prices and quantities are exact floats (what every parser makes): anything else is refused, so no Python
 * code (a __float__) runs inside a loop. */
static int as_double(PyObject *o, double *out) {
    if (!PyFloat_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "a price or quantity must be a float, got %.80s", Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(o);
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

/* A level's price and quantity as doubles, as tuple unpacking and the reference's float use allow. */
static int unpack_level(PyObject *level, double *price, double *qty) {
    PyObject *price_o, *qty_o;
    if (!as_pair(level, &price_o, &qty_o)) {
        PyErr_Format(PyExc_ValueError, "a level must be a (price, quantity) pair, got %R", level);
        return -1;
    }
    return as_double(price_o, price) < 0 || as_double(qty_o, qty) < 0 ? -1 : 0;
}

/* ---- the table: price -> quantity, open addressing, linear probing, backward-shift deletion ------------ */

typedef struct {
    double price; /* 0.0: an empty slot (a book's prices are above 0: the table refuses any other) */
    double qty;
} Slot;

#define MIN_CAPACITY 16
/* Grown at 70 % full: probes stay short (~1.7 on a hit) and a 5,000-level side fits 8,192 slots (128 KB). */
#define FULL(count, capacity) ((count) * 10 > (capacity) * 7)

typedef struct {
    PyObject_HEAD
    Slot *table;
    Py_ssize_t mask;  /* capacity - 1 (a power of two) */
    int shift;        /* 64 - log2(capacity): a hash's top bits pick the home slot */
    Py_ssize_t count; /* levels */
    double *keys;     /* the window: the best keys, ascending */
    Py_ssize_t nkeys, keys_capacity;
    int complete; /* the window holds every level of the side */
    int negate;   /* an ask side: key = -price */
    Py_ssize_t window;
} Side;

/* A price's key, or a key's price: the same (-x on an ask side, where the best key is the largest too). */
static inline double flip(const Side *s, double x) { return s->negate ? -x : x; }

static inline Py_ssize_t home(const Side *s, double price) {
    uint64_t bits;
    memcpy(&bits, &price, sizeof bits);
    return (Py_ssize_t)((bits * 0x9E3779B97F4A7C15ULL) >> s->shift); /* Fibonacci hashing of the bits */
}

/* The slot holding ``price``, or the empty slot where it would go. */
static inline Py_ssize_t probe(const Side *s, double price) {
    Py_ssize_t i = home(s, price);
    while (s->table[i].price != 0.0 && s->table[i].price != price) {
        i = (i + 1) & s->mask;
    }
    return i;
}

static int allocate_table(Side *s, Py_ssize_t capacity) {
    Slot *table = PyMem_Calloc((size_t)capacity, sizeof(Slot));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->table = table;
    s->mask = capacity - 1;
    int log2 = 0;
    while (((Py_ssize_t)1 << log2) < capacity) {
        log2++;
    }
    s->shift = 64 - log2;
    return 0;
}

static int grow(Side *s) {
    Slot *old = s->table;
    Py_ssize_t old_capacity = s->mask + 1;
    if (allocate_table(s, old_capacity * 2) < 0) {
        s->table = old;
        return -1;
    }
    for (Py_ssize_t i = 0; i < old_capacity; i++) {
        if (old[i].price != 0.0) {
            s->table[probe(s, old[i].price)] = old[i];
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Set ``price`` to ``qty``; *added: whether it was a new level. */
static int put(Side *s, double price, double qty, int *added) {
    Py_ssize_t i = probe(s, price);
    if (s->table[i].price == price) {
        s->table[i].qty = qty;
        *added = 0;
        return 0;
    }
    if (FULL(s->count + 1, s->mask + 1)) {
        if (grow(s) < 0) {
            return -1;
        }
        i = probe(s, price);
    }
    s->table[i].price = price;
    s->table[i].qty = qty;
    s->count++;
    *added = 1;
    return 0;
}

/* Remove ``price``; returns whether it was there. The slots after it move back over the hole, so that every
 * level stays reachable from its home slot without tombstones. */
static int take(Side *s, double price) {
    Py_ssize_t hole = probe(s, price);
    if (s->table[hole].price == 0.0) {
        return 0;
    }
    Py_ssize_t j = hole;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->table[j].price == 0.0) {
            break;
        }
        Py_ssize_t k = home(s, s->table[j].price);
        /* The entry at j may fill the hole unless its home lies cyclically in (hole, j]. */
        if ((j > hole) ? (k <= hole || k > j) : (k <= hole && k > j)) {
            s->table[hole] = s->table[j];
            hole = j;
        }
    }
    s->table[hole].price = 0.0;
    s->table[hole].qty = 0.0;
    s->count--;
    return 1;
}

static inline double quantity_at(const Side *s, double price) { return s->table[probe(s, price)].qty; }

/* ---- the window: the best keys, ascending ------------------------------------------------------------- */

static int reserve_keys(Side *s, Py_ssize_t n) {
    if (n <= s->keys_capacity) {
        return 0;
    }
    Py_ssize_t capacity = s->keys_capacity ? s->keys_capacity : 16;
    while (capacity < n) {
        capacity *= 2;
    }
    double *keys = PyMem_Realloc(s->keys, (size_t)capacity * sizeof(double));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->keys = keys;
    s->keys_capacity = capacity;
    return 0;
}

/* bisect.bisect_left (right = 0) or bisect.bisect_right (right = 1) of x in the window. */
static Py_ssize_t bisect(const Side *s, double x, int right) {
    Py_ssize_t lo = 0, hi = s->nkeys;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (right ? (x < s->keys[mid]) : !(s->keys[mid] < x)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The window becomes the whole side, sorted (a walk or read past it). */
static int widen(Side *s) {
    if (reserve_keys(s, s->count) < 0) {
        return -1;
    }
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i <= s->mask; i++) {
        double price = s->table[i].price;
        if (price != 0.0) {
            s->keys[n++] = flip(s, price);
        }
    }
    qsort(s->keys, (size_t)n, sizeof(double), compare_doubles);
    s->nkeys = n;
    s->complete = 1;
    return 0;
}

static void sift_down(double *heap, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t least = i, left = 2 * i + 1, right = left + 1;
        if (left < n && heap[left] < heap[least]) least = left;
        if (right < n && heap[right] < heap[least]) least = right;
        if (least == i) return;
        double t = heap[i];
        heap[i] = heap[least];
        heap[least] = t;
        i = least;
    }
}

/* Bring the window back to ``window`` keys (OrderBook's _fit in the reference): cut a long one, refill a short
 * one from the table (its best ``window`` keys: a min-heap of them, one compare for most levels). */
static int fit(Side *s) {
    Py_ssize_t size = s->window;
    if (s->nkeys > size) {
        memmove(s->keys, s->keys + (s->nkeys - size), (size_t)size * sizeof(double)); /* the worst are first */
        s->nkeys = size;
        s->complete = 0;
        return 0;
    }
    if (s->nkeys >= s->count) {
        return 0;
    }
    Py_ssize_t k = s->count < size ? s->count : size, n = 0;
    if (reserve_keys(s, k) < 0) {
        return -1;
    }
    double *heap = s->keys;
    for (Py_ssize_t i = 0; i <= s->mask; i++) {
        double price = s->table[i].price;
        if (price == 0.0) continue;
        double key = flip(s, price);
        if (n < k) { /* push, sift up */
            Py_ssize_t j = n++;
            while (j > 0 && heap[(j - 1) / 2] > key) {
                heap[j] = heap[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            heap[j] = key;
        } else if (key > heap[0]) {
            heap[0] = key;
            sift_down(heap, n, 0);
        }
    }
    qsort(heap, (size_t)n, sizeof(double), compare_doubles);
    s->nkeys = n;
    s->complete = n == s->count;
    return 0;
}

/* ---- the type ---------------------------------------------------------------------------------------- */

/* NO_PYTHON_CODE: a method that reads the side into a list or tuple of new objects holds counts and indexes
 * across those allocations, and on CPython 3.11 an allocation can start a garbage collection, which runs
 * finalizers and gc callbacks: Python code that could change this very side under the loop. So the garbage
 * collector is held off while such a result is built (allocating alone runs no other Python code). */

/* Empty: a fresh smallest table (the old one freed), no window, which is then the whole (empty) side. */
static int reset(Side *s) {
    Slot *old = s->table;
    if (allocate_table(s, MIN_CAPACITY) < 0) {
        s->table = old;
        return -1;
    }
    PyMem_Free(old);
    s->count = 0;
    s->nkeys = 0;
    s->complete = 1;
    return 0;
}

/* A table from the start, so that a Side made without __init__ is a valid empty bid side. */
static PyObject *Side_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    Side *self = (Side *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (reset(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->window = 128;
    return (PyObject *)self;
}

static int Side_init(Side *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ask", "window", NULL};
    int ask;
    Py_ssize_t window;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "pn:Side", kwlist, &ask, &window)) {
        return -1;
    }
    if (window < 4) {
        PyErr_Format(PyExc_ValueError, "window must be at least 4 levels, got %zd", window);
        return -1;
    }
    if (reset(self) < 0) {
        return -1;
    }
    self->negate = ask;
    self->window = window;
    return 0;
}

static void Side_dealloc(Side *self) {
    PyMem_Free(self->table);
    PyMem_Free(self->keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Side_len(Side *self) { return self->count; }

#define APPLY_SIGNATURE "apply(changes: list, mark: float, need: float)"

static PyObject *Side_apply(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "expected " APPLY_SIGNATURE);
        return NULL;
    }
    PyObject *changes = args[0];
    double mark = PyFloat_AsDouble(args[1]);
    if (mark == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double need = PyFloat_AsDouble(args[2]);
    if (need == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(changes);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "no changes: a side with none is not applied");
        return NULL;
    }
    /* Read once: levels removed or added during the loop keep the split at ``worst`` valid. */
    double worst = self->complete ? -Py_HUGE_VAL : self->nkeys ? self->keys[0] : Py_HUGE_VAL;
    /* The best changed key, and whether a quantity set at it is below ``need``: whether walks are reached. */
    double best = -Py_HUGE_VAL;
    int below = 0;
    /* Every level checked before any is applied: a refused diff changes nothing (no Python code runs in
     * either loop, so the list cannot change between them). */
    for (Py_ssize_t i = 0; i < n; i++) {
        double price, qty;
        if (unpack_level(PyList_GET_ITEM(changes, i), &price, &qty) < 0) {
            return NULL;
        }
        if (!(price > 0.0 && price < Py_HUGE_VAL)) { /* the table's empty mark is 0.0, and a NaN is never found */
            PyErr_Format(PyExc_ValueError, "a book price must be a finite number above 0, got %R",
                         PyList_GET_ITEM(changes, i));
            return NULL;
        }
    }
    /* Room for every new key up front: a failure past this point leaves no level outside its window. */
    if (reserve_keys(self, self->nkeys + n) < 0) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double price, qty;
        (void)unpack_level(PyList_GET_ITEM(changes, i), &price, &qty); /* checked above */
        double key = flip(self, price);
        if (key > best || i == 0) {
            best = key;
            below = qty < need;
        } else if (key == best) {
            below |= qty < need;
        }
        if (qty != 0.0) { /* `if qty:` (a NaN quantity is true, as in Python) */
            int added;
            if (put(self, price, qty, &added) < 0) {
                return NULL;
            }
            if (added && key > worst) { /* insort */
                Py_ssize_t at = bisect(self, key, 1);
                memmove(self->keys + at + 1, self->keys + at, (size_t)(self->nkeys - at) * sizeof(double));
                self->keys[at] = key;
                self->nkeys++;
            }
        } else if (take(self, price) && key >= worst) {
            /* In the window, unless the same diff re-added it below the window before this removal. */
            Py_ssize_t at = bisect(self, key, 0);
            if (at < self->nkeys && self->keys[at] == key) {
                memmove(self->keys + at, self->keys + at + 1, (size_t)(self->nkeys - at - 1) * sizeof(double));
                self->nkeys--;
            }
        }
    }
    if (!((self->window >> 2) <= self->nkeys && self->nkeys <= (self->window << 1)) && fit(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(best > mark || (best == mark && below));
}

static PyObject *level_tuple(double price, double qty) { return Py_BuildValue("(dd)", price, qty); }

/* The i-th best level, (price, qty). */
static PyObject *level_from_best(const Side *s, Py_ssize_t i) {
    double price = flip(s, s->keys[s->nkeys - 1 - i]);
    return level_tuple(price, quantity_at(s, price));
}

/* The i-th worst window key's price. */
static PyObject *price_from_worst(const Side *s, Py_ssize_t i) { return PyFloat_FromDouble(flip(s, s->keys[i])); }

/* The i-th window key, as stored. */
static PyObject *key_at(const Side *s, Py_ssize_t i) { return PyFloat_FromDouble(s->keys[i]); }

/* A new list (or tuple) of ``item(s, 0..n-1)``, built with the collector held off (NO_PYTHON_CODE). */
static PyObject *build(const Side *s, Py_ssize_t n, int tuple, PyObject *(*item)(const Side *, Py_ssize_t)) {
    int gc_was_enabled = PyGC_Disable();
    PyObject *out = tuple ? PyTuple_New(n) : PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *o = item(s, i);
        if (o == NULL) {
            Py_CLEAR(out);
        } else if (tuple) {
            PyTuple_SET_ITEM(out, i, o);
        } else {
            PyList_SET_ITEM(out, i, o);
        }
    }
    if (gc_was_enabled) {
        PyGC_Enable();
    }
    return out;
}

static PyObject *Side_best(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (self->nkeys == 0) {
        Py_RETURN_NONE;
    }
    return level_from_best(self, 0);
}

static PyObject *Side_best_price(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (self->nkeys == 0) {
        return PyFloat_FromDouble(Py_NAN);
    }
    return PyFloat_FromDouble(flip(self, self->keys[self->nkeys - 1]));
}

/* An int argument as a Py_ssize_t, saturated: an int beyond the range means "more than any side holds"
 * (or less than none), as the reference's comparisons and slices treat it, never an OverflowError. */
static int clamped_ssize(PyObject *arg, Py_ssize_t *out) {
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (value == -1 && !overflow && PyErr_Occurred()) {
        return -1;
    }
#if PY_SSIZE_T_MAX < LLONG_MAX
    if (value > PY_SSIZE_T_MAX) {
        overflow = 1;
    } else if (value < PY_SSIZE_T_MIN) {
        overflow = -1;
    }
#endif
    if (overflow != 0) {
        *out = overflow > 0 ? PY_SSIZE_T_MAX : PY_SSIZE_T_MIN;
    } else {
        *out = (Py_ssize_t)value;
    }
    return 0;
}

static PyObject *Side_levels(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t n = 0;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected levels(n: int = 0)");
        return NULL;
    }
    if (nargs == 1) {
        if (clamped_ssize(args[0], &n) < 0) {
            return NULL;
        }
        if (n < 0) {
            PyErr_Format(PyExc_ValueError, "n must be 0 (all) or more, got %R", args[0]);
            return NULL;
        }
    }
    if ((n == 0 || n > self->nkeys) && !self->complete && widen(self) < 0) {
        return NULL;
    }
    return build(self, (n == 0 || n > self->nkeys) ? self->nkeys : n, 0, level_from_best);
}

static PyObject *Side_truncate(Side *self, PyObject *arg) {
    Py_ssize_t depth;
    if (clamped_ssize(arg, &depth) < 0) {
        return NULL;
    }
    if (depth < 0) { /* as the reference's slices: every level goes */
        depth = 0;
    }
    if (!self->complete && widen(self) < 0) {
        return NULL;
    }
    Py_ssize_t excess = self->nkeys - depth;
    if (excess <= 0) {
        return PyList_New(0);
    }
    PyObject *removed = build(self, excess, 0, price_from_worst); /* worst first; whole before any level goes */
    if (removed == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < excess; i++) {
        take(self, flip(self, self->keys[i]));
    }
    memmove(self->keys, self->keys + excess, (size_t)(self->nkeys - excess) * sizeof(double));
    self->nkeys -= excess;
    return removed;
}

static PyObject *Side_clear(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (reset(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* (vwap, base, quote, top, levels, complete, mark key, need): the reference's walk, its operations in order. */
static PyObject *walk_result(double vwap, double base, double quote, double top, long used, int complete, double key,
                             double need) {
    return Py_BuildValue("(ddddlNdd)", vwap, base, quote, top, used, PyBool_FromLong(complete), key, need);
}

#define WALK_SIGNATURE "walk(overlay: (price, qty) | None, by_base: bool, target: float, kind: int, size: float)"

static PyObject *Side_walk(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "expected " WALK_SIGNATURE);
        return NULL;
    }
    PyObject *overlay = args[0];
    int by_base = PyObject_IsTrue(args[1]);
    if (by_base < 0) {
        return NULL;
    }
    /* Scalars, not levels: any real number (an int size from a caller), as the reference takes them. */
    double target = PyFloat_AsDouble(args[2]);
    if (target == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double size = PyFloat_AsDouble(args[4]);
    if (size == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    long kind = PyLong_AsLong(args[3]);
    if (kind == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (kind < 0 || kind > 2) {
        PyErr_Format(PyExc_ValueError, "kind must be 0 (base), 1 (linear) or 2 (inverse), got %ld", kind);
        return NULL;
    }
    const double sign = self->negate ? -1.0 : 1.0;
    if (self->nkeys == 0 && overlay == Py_None) {
        return walk_result(Py_NAN, 0.0, 0.0, Py_NAN, 0, 0, -Py_HUGE_VAL, Py_HUGE_VAL);
    }
    double filled_base = 0.0, filled_quote = 0.0, price, qty;
    long used = 0;
    Py_ssize_t i;
    /* The overlay level first, then only book levels strictly worse than it. */
    if (overlay != Py_None) {
        if (unpack_level(overlay, &price, &qty) < 0) {
            return NULL;
        }
        i = bisect(self, sign * price, 0);
    } else {
        i = self->nkeys - 1;
        price = sign * self->keys[i];
        qty = quantity_at(self, price);
    }
    const double top = price;
    for (;;) {
        used++;
        if (kind == 2 && price == 0.0) {
            goto zero_division;
        }
        double level_base = kind == 0 ? qty : kind == 1 ? qty * size : qty * size / price;
        double level_quote = level_base * price;
        if (by_base) {
            double remaining = target - filled_base;
            if (level_base >= remaining) {
                filled_quote += remaining * price;
                filled_base = target;
                if (level_base == 0.0 || filled_base == 0.0) { /* Python's float division raises */
                    goto zero_division;
                }
                return walk_result(filled_quote / filled_base, filled_base, filled_quote, top, used, 1, sign * price,
                                   qty * (remaining / level_base));
            }
        } else {
            double remaining = target - filled_quote;
            if (level_quote >= remaining) {
                if (price == 0.0) {
                    goto zero_division;
                }
                filled_base += remaining / price;
                filled_quote = target;
                if (level_quote == 0.0 || filled_base == 0.0) { /* as the reference's float divisions */
                    goto zero_division;
                }
                return walk_result(filled_quote / filled_base, filled_base, filled_quote, top, used, 1, sign * price,
                                   qty * (remaining / level_quote));
            }
        }
        filled_base += level_base;
        filled_quote += level_quote;
        i -= 1;
        if (i < 0) {
            if (self->complete) {
                break;
            }
            /* Past the window: widen it, and go on below the level just consumed. */
            if (widen(self) < 0) {
                return NULL;
            }
            i = bisect(self, sign * price, 0) - 1;
            if (i < 0) {
                break;
            }
        }
        price = sign * self->keys[i];
        qty = quantity_at(self, price);
    }
    double vwap = filled_base > 0.0 ? filled_quote / filled_base : Py_NAN;
    return walk_result(vwap, filled_base, filled_quote, top, used, 0, -Py_HUGE_VAL, Py_HUGE_VAL);
zero_division:
    PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
    return NULL;
}

static PyObject *Side_window_keys(Side *self, PyObject *Py_UNUSED(ignored)) {
    return build(self, self->nkeys, 1, key_at);
}

static PyObject *Side_get_complete(Side *self, void *Py_UNUSED(closure)) { return PyBool_FromLong(self->complete); }

static PyMethodDef Side_methods[] = {
    {"apply", (PyCFunction)(void (*)(void))Side_apply, METH_FASTCALL,
     APPLY_SIGNATURE " -> bool: set or remove each (price, qty) (0 removes); whether the diff may reach the walks "
                     "(its best changed key above the watermark ``mark``, or at it with a quantity below ``need``)."},
    {"best", (PyCFunction)Side_best, METH_NOARGS, "best() -> (price, qty) of the best level, or None."},
    {"best_price", (PyCFunction)Side_best_price, METH_NOARGS, "best_price() -> the best price, or nan."},
    {"levels", (PyCFunction)(void (*)(void))Side_levels, METH_FASTCALL,
     "levels(n=0) -> the best n levels (0: all), best first."},
    {"truncate", (PyCFunction)Side_truncate, METH_O,
     "truncate(depth) -> the prices removed past the best ``depth`` levels, worst first."},
    {"clear", (PyCFunction)Side_clear, METH_NOARGS, "clear() -> remove every level."},
    {"walk", (PyCFunction)(void (*)(void))Side_walk, METH_FASTCALL,
     WALK_SIGNATURE " -> (vwap, base, quote, top, levels, complete, mark key, need)."},
    {"window_keys", (PyCFunction)Side_window_keys, METH_NOARGS, "window_keys() -> the window's keys, ascending."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Side_getset[] = {
    {"complete", (getter)Side_get_complete, NULL, "whether the window holds every level of the side", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Side_as_sequence = {
    .sq_length = (lenfunc)Side_len,
};

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "feeds._levels.Side",
    .tp_doc = PyDoc_STR("Side(ask, window): one side of an order book (see feeds/_levels_py.py's Side)."),
    .tp_basicsize = sizeof(Side),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Side_new,
    .tp_init = (initproc)Side_init,
    .tp_dealloc = (destructor)Side_dealloc,
    .tp_methods = Side_methods,
    .tp_getset = Side_getset,
    .tp_as_sequence = &Side_as_sequence,
};

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

static PyMethodDef methods[] = {
    {"first_bad_level", (PyCFunction)first_bad_level, METH_O,
     "first_bad_level(levels) -> index of the first level that is not a finite positive price with a finite "
     "non-negative quantity (both floats), or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "feeds._levels", "One side of an order book, compiled (see feeds/_levels_py.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__levels(void) {
    if (PyType_Ready(&SideType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Side", (PyObject *)&SideType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
