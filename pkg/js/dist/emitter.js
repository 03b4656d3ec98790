// Listeners by event name, for the client and its subscriptions. A listener
// that throws does not break the client: its error is rethrown on a timer,
// the way event targets report it.
export class Emitter {
    listeners = new Map();
    /** Adds a listener; returns a function that removes it. */
    on(type, listener) {
        let set = this.listeners.get(type);
        if (!set)
            this.listeners.set(type, (set = new Set()));
        set.add(listener);
        return () => this.off(type, listener);
    }
    /** Adds a listener of the next event of a type only. */
    once(type, listener) {
        const off = this.on(type, (data) => {
            off();
            listener(data);
        });
        return off;
    }
    off(type, listener) {
        this.listeners.get(type)?.delete(listener);
    }
    emit(type, data) {
        const set = this.listeners.get(type);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(data);
            }
            catch (e) {
                setTimeout(() => {
                    throw e;
                });
            }
        }
    }
}
