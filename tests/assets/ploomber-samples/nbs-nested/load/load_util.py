def a_function():
    print("hello!")
