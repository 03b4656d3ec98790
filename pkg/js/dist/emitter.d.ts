type AnyListener = (data: never) => void;
export declare class Emitter {
    private readonly listeners;
    /** Adds a listener; returns a function that removes it. */
    on(type: string, listener: AnyListener): () => void;
    /** Adds a listener of the next event of a type only. */
    once(type: string, listener: AnyListener): () => void;
    off(type: string, listener: AnyListener): void;
    emit(type: string, data: unknown): void;
}
export {};
